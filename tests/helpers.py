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


def write_stardist_model(folder: Path, network: str, params: dict, prob_thresh: float = 0.5,
                         nms_thresh: float = 0.4, **config) -> Path:
    """A StarDist model folder with untrained weights (what LoadedModel needs), for oracle-network tests."""
    import torch
    import yaml

    from dl4mic.networks import get_network

    (folder / "weights").mkdir(parents=True)
    torch.save(get_network(network).build(params).state_dict(), folder / "weights" / "best.pt")
    config = {"network": network, "task": "instance", "name": folder.name, "parameters": params,
              "normalization": {"source": {"method": "percentile", "low": 1.0, "high": 99.8}},
              "prob_thresh": prob_thresh, "nms_thresh": nms_thresh, **config}
    (folder / "model.yaml").write_text(yaml.safe_dump(config))
    return folder
