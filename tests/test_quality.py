"""Real-data quality runs (slow; `make test-all`): the foundation issue's acceptance criteria."""

from __future__ import annotations

import json

import pytest

import dl4mic

pytestmark = pytest.mark.slow


def test_care2d_fmd_beats_noisy_input_by_1db(tmp_path, shared_data):
    data = shared_data / "fmd_confocal_bpae_b"
    model = dl4mic.train("care2d", source=data / "train" / "noisy", target=data / "train" / "clean",
                         model=tmp_path / "care", epochs=15, params={"steps_per_epoch": 30}, progress="none")
    summary = dl4mic.qc(model, data / "test" / "noisy", data / "test" / "clean", progress="none")
    means = summary["metrics"]
    assert means["model"]["psnr"] >= means["input"]["psnr"] + 1.0, json.dumps(means)


def test_unet2d_isbi_beats_otsu(tmp_path, shared_data):
    data = shared_data / "isbi2012_em_membranes"
    model = dl4mic.train("unet2d", source=data / "train" / "images", target=data / "train" / "masks",
                         model=tmp_path / "unet", epochs=25,
                         params={"steps_per_epoch": 25, "patch_size": 128, "batch_size": 8,
                                 "mask_foreground": "zero", "val_split": 0.15}, progress="none")
    summary = dl4mic.qc(model, data / "test" / "images", data / "test" / "masks", progress="none")
    means = summary["metrics"]
    assert means["model"]["iou"] > means["otsu"]["iou"] and means["model"]["dice"] > means["otsu"]["dice"], \
        json.dumps(means)


def test_n2v2d_fmd_from_noisy_images_only_beats_noisy_input_by_1db(tmp_path, shared_data):
    data = shared_data / "fmd_confocal_bpae_b"
    model = dl4mic.train("n2v2d", source=data / "train" / "noisy", model=tmp_path / "n2v", epochs=10,
                         params={"steps_per_epoch": 30, "batch_size": 32}, progress="none")
    summary = dl4mic.qc(model, data / "test" / "noisy", data / "test" / "clean", progress="none")
    means = summary["metrics"]
    assert means["model"]["psnr"] >= means["input"]["psnr"] + 1.0, json.dumps(means)


def test_stardist2d_dsb_beats_otsu(tmp_path, shared_data):
    data = shared_data / "dsb2018_stage1test_nuclei_gray"
    model = dl4mic.train("stardist2d", source=data / "train" / "images", target=data / "train" / "masks",
                         model=tmp_path / "sd", epochs=15, params={"steps_per_epoch": 50}, progress="none")
    summary = dl4mic.qc(model, data / "test" / "images", data / "test" / "masks", progress="none")
    means = summary["metrics"]
    assert means["model"]["f1"] > max(0.5, means["otsu"]["f1"]), json.dumps(means)
