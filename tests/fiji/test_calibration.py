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
