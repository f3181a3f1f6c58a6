"""Small helpers for tests: run the CLI in-process and build tiny data sets from real images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import tifffile

from dl4mic.cli import main

TINY = {"steps_per_epoch": 3, "batch_size": 4, "patch_size": 32, "depth": 2, "filters": 8, "val_patches": 8,
        "precision": "float32"}


def cli(*args) -> int:
    return main([str(a) for a in args])


def copy_pairs(src_root: Path, dst_root: Path, names: list[str], kinds=("noisy", "clean")) -> tuple[Path, Path]:
    for kind in kinds:
        (dst_root / kind).mkdir(parents=True, exist_ok=True)
        for n in names:
            shutil.copy(src_root / kind / n, dst_root / kind / n)
    return dst_root / kinds[0], dst_root / kinds[1]


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.asarray(data))
    return path


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))
