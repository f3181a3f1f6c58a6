"""Reading every supported format and bit depth, axes inference, atomic writes, specs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from dl4mic.data.io import atomic_path, dtype_range, infer_axes, list_images, read_image, write_tiff
from dl4mic.data.normalize import Normalizer, fit_normalizer, scale, unscale
from dl4mic.errors import UserError
from dl4mic.specs import load_spec, spec_names


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_tiff_bit_depths_round_trip(tmp_path, dtype):
    data = (np.arange(40 * 30).reshape(40, 30) % 200).astype(dtype)
    path = write_tiff(tmp_path / "a.tif", data)
    back = read_image(path)
    assert back.dtype == dtype and np.array_equal(back, data)


def test_png_jpeg_gray_and_rgb(tmp_path):
    gray16 = (np.arange(64 * 64).reshape(64, 64) * 13 % 65535).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    assert read_image(tmp_path / "g16.png").dtype in (np.uint16, np.int32)
    rgb = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    img = read_image(tmp_path / "c.jpg")
    assert img.shape == (32, 48, 3) and infer_axes(img.shape) == "YXC"
    rgba = np.dstack([rgb, np.full((32, 48), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png").shape == (32, 48, 3)


def test_imagej_metadata_on_output(tmp_path):
    write_tiff(tmp_path / "s.tif", np.zeros((3, 20, 20), np.float32), "ZYX")
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        assert tif.is_imagej and tif.imagej_metadata["slices"] == 3


@pytest.mark.parametrize("shape,axes", [((64, 64), "YX"), ((5, 64, 64), "ZYX"), ((64, 64, 3), "YXC"),
                                        ((2, 64, 64), "CYX"), ((10, 64, 64, 3), "ZYXC")])
def test_infer_axes(shape, axes):
    assert infer_axes(shape) == axes


def test_axes_override_checked():
    assert infer_axes((5, 64, 64), "tyx") == "TYX"
    with pytest.raises(UserError, match="do not fit"):
        infer_axes((5, 64, 64), "YX")


def test_data_range_by_dtype():
    assert dtype_range(np.uint8) == 255 and dtype_range(np.uint16) == 65535 and dtype_range(np.float32) is None


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.tif"
    target.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert target.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_list_images_folder_and_file(tmp_path):
    write_tiff(tmp_path / "b.tif", np.ones((8, 8), np.uint8))
    write_tiff(tmp_path / "a.tif", np.ones((8, 8), np.uint8))
    assert [p.name for p in list_images(tmp_path)] == ["a.tif", "b.tif"]
    assert list_images(tmp_path / "a.tif") == [tmp_path / "a.tif"]
    with pytest.raises(UserError, match="does not exist"):
        list_images(tmp_path / "nope")


def test_normalisation_inverts():
    image = np.random.default_rng(1).gamma(2.0, 30.0, (64, 64)).astype(np.float32)
    norm = fit_normalizer({"norm_low": 1.0, "norm_high": 99.8}, None, "source")
    lo, hi = norm.source_range(image)
    np.testing.assert_allclose(unscale(scale(image, lo, hi), *norm.target_range((lo, hi))), image, rtol=1e-5, atol=1e-3)
    fixed = fit_normalizer({"norm_low": 0.0, "norm_high": 100.0}, [image], "fixed")
    assert fixed.target_range((0, 1)) == (float(image.min()), float(image.max()))
    assert Normalizer(fixed.as_dict()).as_dict() == fixed.as_dict()


def test_specs_parameters_typed_and_checked():
    assert {"care2d", "unet2d"} <= set(spec_names())
    spec = load_spec("unet2d")
    values = spec.resolve({"epochs": "7", "augment": "no", "mask_foreground": "zero"})
    assert values["epochs"] == 7 and values["augment"] is False and values["patch_size"] == 256
    with pytest.raises(UserError, match="not one of"):
        spec.resolve({"mask_foreground": "maybe"})
    with pytest.raises(UserError, match="no parameter"):
        spec.resolve({"nonsense": 1})
    for name in spec_names():
        s = load_spec(name)
        assert s.citations and all(p.help for p in s.parameters)
        assert all(p.level in ("basic", "advanced") for p in s.parameters)
