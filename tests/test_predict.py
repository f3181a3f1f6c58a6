"""Prediction: tiled equals whole-image, outputs named after inputs, no overwriting, U-Net outputs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import yaml

import dl4mic
from dl4mic.data.io import read_image
from dl4mic.predict.model import load_model

from helpers import TINY, cli, write


@pytest.fixture(scope="module")
def isbi_small(tmp_path_factory, shared_data):
    """Four 128x128 crops of real ISBI EM slices with their membrane masks."""
    root = tmp_path_factory.mktemp("isbi")
    src = shared_data / "isbi2012_em_membranes" / "train"
    for i, name in enumerate(["slice_00.tif", "slice_05.tif", "slice_10.tif", "slice_15.tif"]):
        img, mask = read_image(src / "images" / name), read_image(src / "masks" / name)
        write(root / "images" / name, img[128:256, 128:256])
        write(root / "masks" / name, mask[128:256, 128:256])
    return root / "images", root / "masks"


@pytest.fixture(scope="module")
def unet_model(tmp_path_factory, isbi_small):
    model = tmp_path_factory.mktemp("models") / "unet"
    dl4mic.train("unet2d", source=isbi_small[0], target=isbi_small[1], model=model, epochs=2,
                 params={**TINY, "mask_foreground": "zero", "val_split": 0.25}, progress="none")
    return model


def test_unet_outputs_and_threshold(tmp_path, unet_model, isbi_small, capsys):
    config = yaml.safe_load((unet_model / "model.yaml").read_text())
    assert 0.05 <= config["threshold"] <= 0.95
    out = tmp_path / "out"
    assert cli("predict", unet_model, "--input", isbi_small[0], "--output", out) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"slice_{i:02d}_{s}.tif" for i in (0, 5, 10, 15) for s in ("prob", "mask", "labels"))
    prob = tifffile.imread(out / "slice_00_prob.tif")
    mask = tifffile.imread(out / "slice_00_mask.tif")
    labels = tifffile.imread(out / "slice_00_labels.tif")
    assert prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask == 255, prob >= config["threshold"])
    assert labels.dtype == np.uint16 and np.array_equal(labels > 0, mask == 255)


def test_predict_refuses_to_overwrite_and_input_folder(tmp_path, unet_model, isbi_small, capsys):
    out = tmp_path / "out"
    assert cli("predict", unet_model, "--input", isbi_small[0], "--output", out) == 0
    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    assert cli("predict", unet_model, "--input", isbi_small[0], "--output", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert cli("predict", unet_model, "--input", isbi_small[0], "--output", isbi_small[0]) == 2
    assert "input folder" in capsys.readouterr().err


@pytest.mark.parametrize("network", ["care2d", "unet2d"])
def test_tiled_equals_whole_image(network, request, samples, shared_data):
    """A 600x700 image predicted in 256-pixel tiles matches one pass over the whole image."""
    if network == "care2d":
        model = load_model(request.getfixturevalue("care_model_for_tiling"))
        image = np.tile(read_image(samples / "test" / "noisy" / "fov17.tif"), (2, 2))[:600, :700]
        key = "restored"
    else:
        model = load_model(request.getfixturevalue("unet_model"))
        image = read_image(shared_data / "isbi2012_em_membranes" / "test" / "images" / "slice_20.tif")[:500, :450]
        key = "probability"
    whole = model.predict(image, tile=None)[key]
    tiled = model.predict(image, tile=256)[key]
    assert tiled.shape == whole.shape == image.shape
    scale = float(np.abs(whole).max())
    np.testing.assert_allclose(tiled, whole, atol=1e-4 * scale, rtol=0)


@pytest.fixture(scope="module")
def care_model_for_tiling(tmp_path_factory, samples):
    model = tmp_path_factory.mktemp("models") / "care_tiling"
    dl4mic.train("care2d", source=samples / "train" / "noisy", target=samples / "train" / "clean", model=model,
                 epochs=1, params=TINY, progress="none")
    return model
