"""write_tiff's voxel size opens in real ImageJ 1.x as a calibrated Z-stack; ImageJ's own files read back."""

import numpy as np
import pytest

from dl4mic.data.io import read_meta, write_tiff


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_write_tiff_spacing_opens_calibrated_in_imagej(ij, tmp_path, dtype):
    from ij import IJ

    path = write_tiff(tmp_path / "z.tif", np.ones((7, 30, 40), dtype), "ZYX", spacing=(0.9, 0.25, 0.2))
    imp = IJ.openImage(str(path))
    cal = imp.getCalibration()
    assert (imp.getNChannels(), imp.getNSlices(), imp.getNFrames()) == (1, 7, 1)
    assert (cal.pixelDepth, cal.pixelHeight, cal.pixelWidth) == pytest.approx((0.9, 0.25, 0.2))
    assert str(cal.getUnit()) in ("µm", "um", "micron")


def test_plain_tiff_resolution_tags_read_by_imagej(ij, tmp_path):
    """int16 has no ImageJ hyperstack form; the standard resolution tags (per cm) still give ImageJ x/y size."""
    from ij import IJ

    path = write_tiff(tmp_path / "i16.tif", np.ones((7, 30, 40), np.int16), "ZYX", spacing=(0.9, 0.25, 0.2))
    cal = IJ.openImage(str(path)).getCalibration()
    assert (cal.pixelHeight, cal.pixelWidth) == pytest.approx((0.25, 0.2)) and str(cal.getUnit()) in ("µm", "um")


def test_imagej_saved_stack_reads_back(ij, tmp_path):
    """A stack saved by ImageJ itself (unit=micron, µ escaped in the description) gives axes ZYX and µm."""
    from ij import IJ

    imp = IJ.createImage("s", "16-bit black", 40, 30, 5)
    cal = imp.getCalibration()
    cal.pixelWidth, cal.pixelHeight, cal.pixelDepth = 0.2, 0.25, 1.5
    cal.setUnit("micron")
    path = tmp_path / "ij.tif"
    IJ.saveAsTiff(imp, str(path))
    meta = read_meta(path)
    assert meta.axes == "ZYX" and meta.origin == "imagej"
    assert meta.spacing == pytest.approx((1.5, 0.25, 0.2))


@pytest.mark.parametrize("network", ["care3d", "unet3d", "n2v3d"])
def test_3d_predictions_open_as_calibrated_z_stacks(ij, tmp_path, network):
    """Each 3D network's outputs open in ImageJ 1.x with the input's planes and voxel size."""
    from ij import IJ

    import dl4mic

    rng = np.random.default_rng(0)
    spacing = (1.5, 0.4, 0.4)
    zz, yy, xx = np.mgrid[:12, :40, :40]
    blob = ((yy - 20) ** 2 + (xx - 18) ** 2 + (2 * (zz - 6)) ** 2 < 90)
    for split in ("train", "test"):
        for i in range(2):
            write_tiff(tmp_path / split / "src" / f"s{i}.tif", (blob * 100 + rng.normal(30, 10, blob.shape)).astype(np.float32),
                       "ZYX", spacing=spacing)
            write_tiff(tmp_path / split / "tgt" / f"s{i}.tif",
                       (blob * 255).astype(np.uint8) if network == "unet3d" else (blob * 100 + 30).astype(np.float32),
                       "ZYX", spacing=spacing)
    target = None if network == "n2v3d" else tmp_path / "train" / "tgt"
    model = dl4mic.train(network, source=tmp_path / "train" / "src", target=target, model=tmp_path / "m", epochs=1,
                         params={"steps_per_epoch": 1, "batch_size": 1, "patch_size": [12, 32, 32], "depth": 1,
                                 "filters": 4, "val_patches": 1, "precision": "float32"}, progress="none")
    written = dl4mic.predict(model, tmp_path / "test" / "src", tmp_path / "out", progress="none")
    for key, path in written[0].items():
        imp = IJ.openImage(str(path))
        cal = imp.getCalibration()
        assert (imp.getNSlices(), imp.getWidth(), imp.getHeight()) == (12, 40, 40), key
        assert (cal.pixelDepth, cal.pixelHeight, cal.pixelWidth) == pytest.approx(spacing), key
