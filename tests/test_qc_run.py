"""run_qc end to end with a fake model honouring load_model's contract, on tiny synthetic data."""

import csv
import json

import numpy as np
import pytest
import tifffile
import yaml

from dl4mic.errors import UserError
from dl4mic.qc.run import _true_mask, run_qc
from qc_fakes import FakeModel, model_folder, write_pairs


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_restoration_qc_writes_everything_and_reruns_cleanly(tmp_path):
    src, tgt = write_pairs(tmp_path / "data", 3, "restoration")
    model = model_folder(tmp_path, "care2d")
    events = []
    summary = run_qc(FakeModel(model), src, tgt, progress=lambda *a: events.append(a))
    qc = model / "qc"
    for f in ("metrics.csv", "summary.json", "report.pdf", "example.png", "loss_curves.png", "loss_curves_log.png",
              "maps/img0_rse.tif", "maps/img0_ssim.tif", "maps/img0.png", "predictions/img0.tif"):
        assert (qc / f).is_file(), f
    assert events[-1] == (3, 3, "img2.tif")
    rows = _rows(qc / "metrics.csv")
    assert [r["image"] for r in rows] == ["img0.tif", "img1.tif", "img2.tif"]
    assert {"model_ssim", "model_psnr", "model_nrmse", "input_ssim", "gaussian_psnr"} <= set(rows[0])
    on_disk = json.loads((qc / "summary.json").read_text())
    assert on_disk["data_range"] == 255 and on_disk["task"] == "restoration"
    assert set(on_disk["metrics"]) == {"model", "input", "gaussian"}
    assert on_disk["metrics"]["model"]["ssim"] == pytest.approx(np.mean([float(r["model_ssim"]) for r in rows]),
                                                                abs=1e-5)
    assert on_disk["gaussian_sigma"] in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
    assert summary["means"] == on_disk["means"]
    rse = tifffile.imread(qc / "maps" / "img0_rse.tif")
    pred = tifffile.imread(qc / "predictions" / "img0.tif")
    np.testing.assert_allclose(rse, np.abs(pred - tifffile.imread(tgt / "img0.tif")), rtol=1e-5)

    (qc / "stale.txt").write_text("from an older QC")
    (src / "img2.tif").unlink(), (tgt / "img2.tif").unlink()
    run_qc(FakeModel(model), src, tgt, progress="none")
    assert not (qc / "stale.txt").exists() and not (qc / "maps" / "img2_rse.tif").exists()
    assert len(_rows(qc / "metrics.csv")) == 2
    assert [p.name for p in model.iterdir() if p.name.startswith(".")] == []  # no temporary folders left
    with pytest.raises(UserError, match="overwrite"):
        run_qc(FakeModel(model), src, tgt, overwrite=False, progress="none")


def test_segmentation_qc_stores_qc_threshold_and_dark_foreground(tmp_path):
    src, tgt = write_pairs(tmp_path / "data", 3, "segmentation")
    model = model_folder(tmp_path, "unet2d", with_log=False, status="running")
    summary = run_qc(FakeModel(model), src, tgt, progress="none")
    qc = model / "qc"
    assert (qc / "threshold_sweep.png").is_file() and (qc / "maps" / "img0_errors.tif").is_file()
    assert not (qc / "loss_curves.png").exists()  # no training log, no curves
    assert len(summary["threshold_sweep"]) == 19 and summary["otsu_polarity"] == "bright"
    config = yaml.safe_load((model / "model.yaml").read_text())
    assert config["qc_threshold"] == summary["qc_threshold"] and config["threshold"] == 0.5
    assert summary["metrics"]["model"]["iou"] > summary["metrics"]["otsu"]["iou"]
    codes = tifffile.imread(qc / "maps" / "img0_errors.tif")
    assert set(np.unique(codes)) <= {0, 1, 2, 3}



def test_mask_foreground_follows_the_model():
    mask = np.array([0, 255, 0], np.uint8)
    assert _true_mask(mask, {"parameters": {"mask_foreground": "nonzero"}}).tolist() == [False, True, False]
    assert _true_mask(mask, {"parameters": {"mask_foreground": "zero"}}).tolist() == [True, False, True]
    assert _true_mask(mask, {}).tolist() == [False, True, False]


def test_instance_qc(tmp_path):
    src, tgt = write_pairs(tmp_path / "data", 2, "instance")
    model = model_folder(tmp_path, "unet2d")
    summary = run_qc(FakeModel(model, task="instance"), src, tgt, progress="none")
    assert {"f1", "mean_ap", "panoptic_quality"} <= set(summary["metrics"]["model"])
    assert "otsu" in summary["metrics"] and (model / "qc" / "instance_thresholds.png").is_file()
    assert summary["pooled"]["at_0.5"]["n_true"] > 0


def test_unpaired_names_give_one_sentence(tmp_path):
    src, tgt = write_pairs(tmp_path / "data", 2, "restoration")
    (tgt / "img1.tif").rename(tgt / "other.tif")
    model = model_folder(tmp_path, "care2d")
    with pytest.raises(UserError) as err:
        run_qc(FakeModel(model), src, tgt, progress="none")
    message = str(err.value)
    assert "img1.tif" in message and message.count(". ") == 0 and err.value.exit_code == 2
    assert not (model / "qc").exists()


def test_unknown_task_is_refused(tmp_path):
    src, tgt = write_pairs(tmp_path / "data", 1, "restoration")
    with pytest.raises(UserError, match="not available"):
        run_qc(FakeModel(model_folder(tmp_path, "care2d"), task="tracking"), src, tgt, progress="none")
