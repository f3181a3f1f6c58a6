"""Real-data quality runs (slow; `make test-all`): the acceptance criteria of the networks' issues."""

from __future__ import annotations

import json

import pytest

import dl4mic

pytestmark = pytest.mark.slow


def trained_scores(tmp_path, network: str, train: tuple, test: tuple, epochs: int, params: dict) -> dict:
    """Train on `train` = (source, target or None), run QC on `test` = (source, target): the mean scores."""
    model = dl4mic.train(network, source=train[0], target=train[1], model=tmp_path / network, epochs=epochs,
                         params=params, progress="none")
    return dl4mic.qc(model, test[0], test[1], progress="none")["metrics"]


def test_care2d_fmd_beats_noisy_input_by_1db(tmp_path, shared_data):
    data = shared_data / "fmd_confocal_bpae_b"
    means = trained_scores(tmp_path, "care2d", (data / "train" / "noisy", data / "train" / "clean"),
                           (data / "test" / "noisy", data / "test" / "clean"), 15, {"steps_per_epoch": 30})
    assert means["model"]["psnr"] >= means["input"]["psnr"] + 1.0, json.dumps(means)


def test_unet2d_isbi_beats_otsu(tmp_path, shared_data):
    data = shared_data / "isbi2012_em_membranes"
    means = trained_scores(tmp_path, "unet2d", (data / "train" / "images", data / "train" / "masks"),
                           (data / "test" / "images", data / "test" / "masks"), 25,
                           {"steps_per_epoch": 25, "patch_size": 128, "batch_size": 8, "mask_foreground": "zero",
                            "val_split": 0.15})
    assert means["model"]["iou"] > means["otsu"]["iou"] and means["model"]["dice"] > means["otsu"]["dice"], \
        json.dumps(means)


def test_n2v2d_fmd_from_noisy_images_only_beats_noisy_input_by_1db(tmp_path, shared_data):
    data = shared_data / "fmd_confocal_bpae_b"
    means = trained_scores(tmp_path, "n2v2d", (data / "train" / "noisy", None),
                           (data / "test" / "noisy", data / "test" / "clean"), 10,
                           {"steps_per_epoch": 30, "batch_size": 32})
    assert means["model"]["psnr"] >= means["input"]["psnr"] + 1.0, json.dumps(means)


def test_stardist2d_dsb_beats_otsu(tmp_path, shared_data):
    data = shared_data / "dsb2018_stage1test_nuclei_gray"
    means = trained_scores(tmp_path, "stardist2d", (data / "train" / "images", data / "train" / "masks"),
                           (data / "test" / "images", data / "test" / "masks"), 15,
                           {"steps_per_epoch": 50, "patch_size": 128})  # the smallest DSB image is 162 px wide
    assert means["model"]["f1"] > max(0.5, means["otsu"]["f1"]), json.dumps(means)
