#!/usr/bin/env python3
"""StarDist 3D: dl4mic (PyTorch) against the reference, stardist's StarDist3D (TensorFlow/Keras), in one run.

    .venv/bin/python benchmarks/stardist3d/run.py --quick        # smoke test: 3 epochs x 10 steps
    .venv/bin/python benchmarks/stardist3d/run.py --epochs 20 --steps 100

The StarDist 2D benchmark's driver (benchmarks/stardist2d/run.py, whose docstring lists what is held
equal) with the 3D settings of stardist's example notebook: Config3D's U-Net (depth 2, 32 filters,
kernel 3, 128-channel feature convolution), 96 rays on the golden spiral scaled by the anisotropy,
patches 48 x 96 x 96, batch 2, grid from the anisotropy (1 along Z for BBBC050's 2.2, else 2), random
flips / 90-degree rotations in YX and intensity jitter on both sides.  Data: BBBC050 mouse embryo
nuclei (train on `train`, score on `test`, another microscope), per-stack 1 / 99.8 percentiles.  The
reference runs in benchmarks/.venv-tf with stardist 0.9.2 (installed on first use).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402


def _stardist2d_driver():
    spec = importlib.util.spec_from_file_location("stardist2d_run", HERE.parent / "stardist2d" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DRIVER = _stardist2d_driver()
FLAVOUR_3D = {
    "network": "stardist3d", "dims": 3, "doc": __doc__,
    "data": common.REPO_DIR.parent / "shared" / "data" / "bbbc050_mouse_embryo_nuclei_3d",
    "epochs": 20, "batch_size": 2, "patch_size": "48,96,96", "n_rays": 96, "grid": "1,2,2", "anisotropy": "2.2,1,1",
    "depth": 2, "patch_help": "Z,Y,X (BBBC050's stacks are 51 x 112-140 x 112-140)", "results": HERE / "results",
}

if __name__ == "__main__":
    sys.exit(DRIVER.main(flavour=FLAVOUR_3D))
