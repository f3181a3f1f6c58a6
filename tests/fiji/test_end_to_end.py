"""The menu scripts driving the real `dl4mic` command: train a tiny U-Net, predict with --rois, review in the ROI Manager."""

import json
import sys

import numpy as np
import pytest
import tifffile

from dl4mic.fiji.scripting import run_script

from .conftest import SCRIPTS
from .test_scripts import dialog_answers


def blobs(seed, n=2):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    mask = np.zeros((64, 64), bool)
    for _ in range(6):
        cy, cx = rng.integers(8, 56, 2)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(16, 40)
    image = (mask * 120 + rng.normal(20, 5, mask.shape)).astype(np.float32)
    return image, (mask * 255).astype(np.uint8)


@pytest.mark.slow
def test_train_then_predict_rois_into_the_roi_manager(ij, rm, tmp_path, monkeypatch):
    monkeypatch.setenv("DL4MIC_COMMAND", json.dumps([sys.executable, "-m", "dl4mic.cli"]))
    monkeypatch.setenv("DL4MIC_FIJI_MODE", "cli")
    for folder in ("source", "target"):
        (tmp_path / folder).mkdir()
    for i in range(3):
        image, mask = blobs(i)
        tifffile.imwrite(tmp_path / "source" / f"b{i}.tif", image)
        tifffile.imwrite(tmp_path / "target" / f"b{i}.tif", mask)
    with dialog_answers("epochs=1 steps_per_epoch=2 batch_size=2 patch_size=32 learning_rate=0.001 "
                        "val_split=0.34 augment mask_foreground=nonzero"):
        run_script(SCRIPTS / "Train.py", {"network": "unet2d", "source": tmp_path / "source",
                                          "target": tmp_path / "target", "model": tmp_path / "model",
                                          "overwrite": False}, ij)
    assert (tmp_path / "model" / "model.yaml").is_file()
    out = tmp_path / "out"
    run_script(SCRIPTS / "Predict.py", {"model": tmp_path / "model", "input": tmp_path / "source" / "b0.tif",
                                        "output": out, "rois": True, "show": True}, ij)
    zips = sorted(out.glob("b0*_rois.zip"))
    assert zips, sorted(p.name for p in out.iterdir())
    assert rm.getCount() == len(ij.read_rois(zips[0]))
