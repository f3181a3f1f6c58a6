"""Reading every supported format and bit depth, axes and voxel size from metadata, atomic writes, specs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from dl4mic.data.io import (ImageMeta, atomic_path, dtype_range, infer_axes, list_images, read_image,
                            read_image_with_meta, read_meta, write_tiff)
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


# --- axes and voxel size from metadata -----------------------------------------------------------------

def _imagej(path, shape, axes, **meta):
    resolution = meta.pop("resolution", None)
    tifffile.imwrite(path, np.zeros(shape, np.uint16), imagej=True, resolution=resolution,
                     metadata={"axes": axes, **meta})
    return path


@pytest.mark.parametrize("unit,factor", [("um", 1.0), ("micron", 1.0), ("\\u00B5m", 1.0),
                                         ("nm", 1e-3), ("mm", 1e3)])
def test_imagej_stack_calibration_in_micrometres(tmp_path, unit, factor):
    path = _imagej(tmp_path / "z.tif", (6, 32, 40), "ZYX", resolution=(1 / 0.25, 1 / 0.2), unit=unit, spacing=0.8)
    meta = read_meta(path)
    assert meta.axes == "ZYX" and meta.origin == "imagej"
    assert meta.spacing == pytest.approx((0.8 * factor, 0.2 * factor, 0.25 * factor))


def test_imagej_uncalibrated_and_default_depth(tmp_path):
    assert read_meta(_imagej(tmp_path / "a.tif", (6, 32, 40), "ZYX")).spacing is None  # resolution 1, no unit
    assert read_meta(_imagej(tmp_path / "b.tif", (6, 32, 40), "ZYX", resolution=(2, 2), unit="pixel")).spacing is None
    # a unit without `spacing`: ImageJ's voxel depth defaults to 1 unit (ImageJ omits spacing=1 when saving)
    meta = read_meta(_imagej(tmp_path / "c.tif", (6, 32, 40), "ZYX", resolution=(2, 2), unit="um"))
    assert meta.spacing == pytest.approx((1.0, 0.5, 0.5))


@pytest.mark.parametrize("shape,axes,spacing", [
    ((3, 5, 32, 40), "TZYX", (0.5, 0.1, 0.1)),
    ((5, 2, 32, 40), "ZCYX", (0.5, 0.1, 0.1)),  # ImageJ stores channels inside slices (TZCYX order)
    ((2, 32, 40), "CYX", (0.1, 0.1)),
    ((3, 5, 2, 32, 40), "TZCYX", (0.5, 0.1, 0.1)),
    ((4, 32, 40), "TYX", (0.1, 0.1)),
])
def test_imagej_hyperstacks(tmp_path, shape, axes, spacing):
    path = _imagej(tmp_path / "h.tif", shape, axes, resolution=(10, 10), unit="um", spacing=0.5)
    assert read_meta(path) == ImageMeta(axes, pytest.approx(spacing), "imagej")
    data, meta = read_image_with_meta(path)
    assert data.shape == shape and meta.axes == axes


def test_plain_imagej_stack_is_z(tmp_path):
    """ImageJ treats a stack without slices/frames (tifffile's 'I') as Z slices."""
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, np.zeros((5, 32, 40), np.uint8), description="ImageJ=1.52i\nimages=5\nunit=micron\n",
                     metadata=None, resolution=(4, 4))
    assert read_meta(path) == ImageMeta("ZYX", pytest.approx((1.0, 0.25, 0.25)), "imagej")


def test_imagej_rgb_samples_last(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((32, 40, 3), np.uint8), imagej=True, resolution=(2, 2), metadata={"unit": "um"})
    assert read_meta(path) == ImageMeta("YXC", (0.5, 0.5), "imagej")


def test_ome_tiff_physical_sizes(tmp_path):
    path = tmp_path / "o.ome.tif"
    tifffile.imwrite(path, np.zeros((5, 32, 40), np.uint16), ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "PhysicalSizeZ": 1.0})
    assert read_meta(path) == ImageMeta("ZYX", pytest.approx((1.0, 0.2, 0.2)), "ome")
    path = tmp_path / "nm.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 5, 32, 40), np.uint16), ome=True,
                     metadata={"axes": "CZYX", "PhysicalSizeX": 200, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 200,
                               "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 1.0})
    assert read_meta(path) == ImageMeta("CZYX", pytest.approx((1.0, 0.2, 0.2)), "ome")
    path = tmp_path / "bare.ome.tif"
    tifffile.imwrite(path, np.zeros((32, 40), np.uint16), ome=True)
    assert read_meta(path) == ImageMeta("YX", None, "ome")


def test_files_without_axes_metadata_follow_the_rule(tmp_path):
    cases = {"g.tif": np.zeros((32, 40), np.uint16), "s.tif": np.zeros((5, 32, 40), np.uint16),
             "c.tif": np.zeros((2, 32, 40), np.float32), "rgb.tif": np.zeros((32, 40, 3), np.uint8)}
    for name, data in cases.items():
        tifffile.imwrite(tmp_path / name, data)  # tifffile's "shaped" files: axes Q..., no calibration
    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((5, 32, 40), np.uint8), metadata=None)  # plain pages: I...
    rgba = np.zeros((32, 40, 4), np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(rgba[..., 0]).save(tmp_path / "g.png")
    Image.fromarray(rgba[..., :3]).save(tmp_path / "c.jpg")
    expected = {"g.tif": "YX", "s.tif": "ZYX", "c.tif": "CYX", "rgb.tif": "YXC", "pages.tif": "ZYX",
                "a.png": "YXC", "g.png": "YX", "c.jpg": "YXC"}
    for name, axes in expected.items():
        assert read_meta(tmp_path / name) == ImageMeta(axes, None, "rule"), name
        data, meta = read_image_with_meta(tmp_path / name)
        assert meta.axes == axes and len(meta.axes) == data.ndim, name  # the PNG's alpha is dropped: YXC of 3


def test_axes_override(tmp_path):
    path = _imagej(tmp_path / "z.tif", (6, 32, 40), "ZYX", resolution=(4, 4), unit="um", spacing=2.0)
    assert read_meta(path, "tyx") == ImageMeta("TYX", None, "override")  # (z, y, x) does not fit T, Y, X
    assert read_meta(path, "zyx") == ImageMeta("ZYX", (2.0, 0.25, 0.25), "override")
    data, meta = read_image_with_meta(path, axes="CYX")
    assert data.shape == (6, 32, 40) and meta == ImageMeta("CYX", None, "override")
    for bad in ("YX", "ZZX", "ZYQ", "CZX"):
        with pytest.raises(UserError, match=r"z\.tif has shape .*give --axes") as err:
            read_meta(path, bad)
        assert err.value.exit_code == 2


def test_write_tiff_spacing_round_trips(tmp_path):
    path = write_tiff(tmp_path / "w.tif", np.ones((4, 32, 40), np.float32), "ZYX", spacing=(0.9, 0.25, 0.2))
    meta = read_meta(path)
    assert meta.axes == "ZYX" and meta.origin == "imagej" and meta.spacing == pytest.approx((0.9, 0.25, 0.2))
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["unit"] == "um" and tif.imagej_metadata["spacing"] == pytest.approx(0.9)
    assert read_meta(write_tiff(tmp_path / "2d.tif", np.ones((32, 40), np.uint8), spacing=(0.5, 0.4))) == \
        ImageMeta("YX", pytest.approx((0.5, 0.4)), "imagej")
    assert read_meta(write_tiff(tmp_path / "n.tif", np.ones((32, 40), np.uint16))).spacing is None
    # dtypes ImageJ cannot hold keep the plain path, with standard resolution tags (pixels per cm)
    write_tiff(tmp_path / "i16.tif", np.ones((4, 32, 40), np.int16), "ZYX", spacing=(0.9, 0.25, 0.2))
    with tifffile.TiffFile(tmp_path / "i16.tif") as tif:
        page = tif.pages[0]
        assert not tif.is_imagej and page.tags["ResolutionUnit"].value == 3
        num, den = page.tags["XResolution"].value
        assert num / den == pytest.approx(1e4 / 0.2)
    with pytest.raises(ValueError, match="spacing"):
        write_tiff(tmp_path / "bad.tif", np.ones((4, 32, 40), np.float32), "ZYX", spacing=(0.25, 0.2))


def test_write_tiff_axes_imagej_cannot_order(tmp_path):
    """CZYX (or 16-bit YXC) is not in ImageJ's TZCYX order; the file is written as plain TIFF, pixels as given."""
    data = np.arange(2 * 3 * 16 * 16, dtype=np.uint16).reshape(2, 3, 16, 16)
    path = write_tiff(tmp_path / "c.tif", data, "CZYX", spacing=(1.0, 0.5, 0.5))
    assert np.array_equal(read_image(path), data) and read_meta(path).axes == "CZYX"
    rgb16 = np.ones((16, 16, 3), np.uint16)
    assert np.array_equal(read_image(write_tiff(tmp_path / "rgb16.tif", rgb16)), rgb16)
    assert read_meta(tmp_path / "rgb16.tif").axes == "YXC"
    cyx = np.ones((3, 32, 32), np.int16)  # three leading channels stay channels, not planar RGB
    assert read_meta(write_tiff(tmp_path / "cyx.tif", cyx)).axes == "CYX"
    with tifffile.TiffFile(tmp_path / "cyx.tif") as tif:
        assert len(tif.pages) == 3 and tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK


def test_read_meta_does_not_read_pixels(tmp_path, monkeypatch):
    path = _imagej(tmp_path / "z.tif", (6, 32, 40), "ZYX", resolution=(4, 4), unit="um")

    def no_pixels(*args, **kwargs):
        raise AssertionError("read_meta decoded pixels")

    monkeypatch.setattr(tifffile.TiffFile, "asarray", no_pixels)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_pixels)
    assert read_meta(path).axes == "ZYX"


def test_unreadable_files_refused(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    for name in ("bad.tif", "bad.png"):
        with pytest.raises(UserError, match=rf"{name} cannot be read as an image .*re-save it as TIFF"):
            read_meta(tmp_path / name)


def test_real_imagej_stack_from_shared_data(shared_data):
    path = shared_data / "care3d_cells3d_semisynthetic" / "train" / "high" / "q_r0c0.tif"
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    meta = read_meta(path)  # ImageJ: slices=60, spacing=0.29, unit=um, X/YResolution 50/13 px per um
    assert meta == ImageMeta("ZYX", pytest.approx((0.29, 0.26, 0.26)), "imagej")
    data, meta2 = read_image_with_meta(path)
    assert data.shape == (60, 128, 128) and meta2 == meta
