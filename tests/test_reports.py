"""Training and QC reports: they open, have the expected pages, and name what they report."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from dl4mic.qc.run import run_qc
from dl4mic.reports.qc_report import write_qc_report
from dl4mic.reports.training_report import write_training_report
from qc_fakes import FakeModel, model_folder, write_pairs


def pages(path) -> int:
    """Page objects in a matplotlib PDF (it writes no object streams, so they are plain text)."""
    return len(re.findall(rb"/Type\s*/Page[^s]", path.read_bytes()))


def text(path) -> str:
    if shutil.which("pdftotext") is None:
        if os.environ.get("CI"):  # make test installs poppler-utils: in CI a missing one is a failure
            pytest.fail("pdftotext is missing; tools/system-deps.sh installs poppler-utils")
        pytest.skip("pdftotext (poppler-utils) is not installed")
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())


def test_training_report_before_and_after_training(tmp_path):
    model = model_folder(tmp_path, "care2d", with_log=False, status="running")
    path = write_training_report(model)
    assert path == model / "training" / "report.pdf"
    before = pages(path)
    words = text(path)
    for expected in ("Training report", "CARE 2D", "running", "patch_size", "learning_rate", "Training data",
                     "Normalisation", "Environment", "Weigert", "doi:10.1038/s41592-018-0216-7", f"page 1 of {before}"):
        assert expected in words, expected
    assert "epochs *" in words  # changed parameters are marked

    finished = model_folder(tmp_path / "done", "care2d")
    after_path = write_training_report(finished)
    words = text(after_path)
    assert pages(after_path) > before
    for expected in ("finished", "0:05:00", "best epoch", "Loss curves", "val_loss"):
        assert expected in words, expected


@pytest.fixture(scope="module")
def qc_models(tmp_path_factory):
    """One QC per task, shared by the tests of this module (QC takes seconds)."""
    out = {}
    for network, kind in (("care2d", "restoration"), ("unet2d", "segmentation")):
        root = tmp_path_factory.mktemp(kind)
        src, tgt = write_pairs(root / "data", 2, kind)
        out[kind] = model_folder(root, network)
        run_qc(FakeModel(out[kind]), src, tgt, progress="none")
    return out


def test_qc_report_pages_and_metric_names(qc_models):
    model = qc_models["segmentation"]
    path = model / "qc" / "report.pdf"
    n = pages(path)
    assert 4 <= n <= 8
    words = text(path)
    for expected in ("Quality control", "U-Net 2D", "iou", "dice", "precision", "recall", "otsu", "Per-image scores",
                     "qc_threshold", "Curves", "Ronneberger", "Versions",
                     "scikit-image", f"page {n} of {n}", "img0.tif"):
        assert expected in words, expected
    # the report can be rebuilt from the QC files alone
    (model / "model.yaml").write_text(yaml.safe_dump({"name": "renamed"}))
    path.unlink()
    assert pages(write_qc_report(model)) >= 3


def test_restoration_qc_report_names_metrics_and_baselines(qc_models):
    model = qc_models["restoration"]
    words = text(model / "qc" / "report.pdf")
    for expected in ("ssim", "psnr", "nrmse", "input", "gaussian", "data range", "uint8", "deep learning"):
        assert expected in words, expected
