"""ROI zips of 3D label stacks without a JVM: one ROI per (object, slice), named N:Z (N:Z:T in time), read back exactly."""

import tracemalloc

import numpy as np
import pytest
import roifile

from dl4mic.data.io import read_image, write_tiff
from dl4mic.errors import UserError
from dl4mic.fiji.cli import cli_main
from dl4mic.predict.rois import (label_from_name, labels_to_roi_zip, labels_to_rois, parse_name, roi_zip_to_labels,
                                 rois_to_labels)
from dl4mic.predict.trackmate import objects_from_labels


def nuclei(depth=5, height=40, width=48):
    """A ZYX stack: a ball crossing 3 slices, a ring with a hole in one slice, a two-part object, a large label."""
    lab = np.zeros((depth, height, width), np.uint16)
    zz, yy, xx = np.mgrid[:depth, :height, :width]
    lab[(zz - 2) ** 2 * 20 + (yy - 12) ** 2 + (xx - 12) ** 2 < 60] = 3
    lab[1, 25:35, 5:15] = 12
    lab[1, 28:32, 8:12] = 0                 # the hole
    lab[0, 2:5, 30:34] = 7
    lab[0, 8:10, 40:44] = 7                 # a second part in the same slice
    lab[3:5, 20:30, 30:45] = 1000
    return lab


def pairs(lab):
    """The (label, 1-based slice) pairs an N:Z zip must hold, in its order (by label, then slice)."""
    return sorted({(int(v), z + 1) for z in range(lab.shape[0]) for v in np.unique(lab[z]) if v})


def test_zyx_one_roi_per_object_and_slice_named_label_z(tmp_path):
    lab = nuclei()
    path = labels_to_roi_zip(lab, tmp_path / "n_rois.zip", axes="ZYX")
    rois = roifile.roiread(path)
    assert [(label_from_name(r.name), r.position) for r in rois] == pairs(lab)
    assert [r.name for r in rois][:4] == ["0003:2", "0003:3", "0003:4", "0007:1"]  # zero-padded: sorts as listed
    assert sorted(r.name for r in rois) == [r.name for r in rois]
    assert all(r.z_position == 0 and r.t_position == 0 for r in rois)
    assert np.array_equal(roi_zip_to_labels(path, lab.shape), lab)


def test_tzyx_rois_carry_slice_and_frame(tmp_path):
    lab = np.stack([nuclei(), np.roll(nuclei(), 4, axis=2), np.zeros_like(nuclei())])
    path = labels_to_roi_zip(lab, tmp_path / "m_rois.zip", axes="TZYX")
    rois = roifile.roiread(path)
    got = [(parse_name(r.name), r.z_position, r.t_position, r.position) for r in rois]
    assert all(z == name[1] and t == name[2] and p == 0 for name, z, t, p in got)
    expected = [(t + 1, v, z) for t in range(2) for v, z in pairs(lab[t])]  # frame by frame, nucleus by nucleus
    assert [(name[2], name[0], name[1]) for name, *_ in got] == expected
    assert rois[0].name == "0003:2:1"
    assert np.array_equal(roi_zip_to_labels(path, lab.shape), lab)


@pytest.mark.parametrize("shape", [(1, 5), (3, 1)], ids=["one frame", "one slice"])
def test_tzyx_with_a_single_slice_or_frame_uses_the_plain_stack_position(tmp_path, shape):
    """ImageJ opens such files as plain stacks, where only the plain position ties a ROI to its plane."""
    frames, slices = shape
    lab = np.stack([np.roll(nuclei(), t, axis=2)[:slices] for t in range(frames)])
    rois = labels_to_rois(lab, axes="TZYX")
    for roi in rois:
        _, z, t = parse_name(roi.name)
        assert (roi.position, roi.z_position, roi.t_position) == ((t - 1) * slices + z, 0, 0)
    path = labels_to_roi_zip(lab, tmp_path / "d_rois.zip", axes="TZYX")
    assert np.array_equal(roi_zip_to_labels(path, lab.shape), lab)


def test_2d_and_time_series_keep_their_names_and_positions():
    lab = nuclei()
    assert [r.name for r in labels_to_rois(lab[1])] == ["label-3", "label-12"]
    series = labels_to_rois(lab, axes="TYX")
    assert series[0].name == "label-7-0001" and [r.position for r in series] == sorted(r.position for r in series)
    assert [(r.name, r.position) for r in labels_to_rois(lab)] == [(r.name, r.position) for r in series]


def test_names_read_back():
    assert parse_name("0012:003") == (12, 3, None)
    assert parse_name("12:3:40") == (12, 3, 40)
    assert parse_name("12:3-2") == (12, 3, None)           # repeated names get -2 in ImageJ and write_roi_zip
    assert parse_name("label-5-0003") == (5, None, None)
    assert label_from_name("label-5") == 5
    assert parse_name("cell:0.91") is None and parse_name("0:0.91") is None  # boxes are class:confidence
    assert parse_name("0001-0123-0456") is None                             # ImageJ's own ROI names


def test_rois_without_positions_are_placed_by_their_names():
    lab = nuclei()
    rois = labels_to_rois(lab, axes="ZYX")
    for roi in rois:
        roi.position = 0
    assert np.array_equal(rois_to_labels(rois, lab.shape), lab)
    movie = np.stack([lab, lab[::-1]])
    rois = labels_to_rois(movie, axes="TZYX")
    for roi in rois:
        roi.z_position = roi.t_position = 0
    assert np.array_equal(rois_to_labels(rois, movie.shape), movie)


def test_large_label_values_give_uint32():
    lab = nuclei().astype(np.uint32)
    lab[lab == 1000] = 70000
    out = rois_to_labels(labels_to_rois(lab, axes="ZYX"), lab.shape)
    assert out.dtype == np.uint32 and np.array_equal(out, lab)


def test_refusals_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="YX, ZYX, TYX or TZYX"):
        labels_to_rois(nuclei(), axes="CYX")
    with pytest.raises(UserError, match="YX, ZYX, TYX or TZYX"):
        labels_to_rois(nuclei(), axes="TZYX")
    with pytest.raises(UserError, match="frame 3"):
        rois = labels_to_rois(np.stack([nuclei()] * 3), axes="TZYX")
        rois_to_labels(rois, (2,) + nuclei().shape)


def test_memory_stays_near_one_plane():
    """A tall stack with a few small nuclei: tracing must not copy the whole stack (an int64 copy is 4x its size)."""
    lab = np.zeros((48, 256, 256), np.uint16)  # 6.3 MB
    for i in range(6):
        lab[i * 8:i * 8 + 5, 20 * i + 10:20 * i + 20, 30:44] = i + 1
    tracemalloc.start()
    rois = labels_to_rois(lab, axes="ZYX")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(rois) == 30 and peak < 3_000_000, peak


def test_trackmate_objects_of_3d_labels():
    lab = nuclei()
    objects = objects_from_labels(lab, axes="ZYX")
    ball = next(o for o in objects if o["name"] == "label-3")
    assert ball["z"] == pytest.approx(2.0) and ball["frame"] == 0
    assert ball["radius"] == pytest.approx((3 * ball["area"] / (4 * np.pi)) ** (1 / 3))
    movie = objects_from_labels(np.stack([lab, lab]), axes="TZYX")
    assert [o["frame"] for o in movie] == [0] * len(objects) + [1] * len(objects)


def test_fiji_cli_reads_the_axes_of_the_label_file(tmp_path):
    lab = nuclei()
    write_tiff(tmp_path / "n_labels.tif", lab, "ZYX", spacing=(2.0, 0.5, 0.5))
    assert cli_main(["rois", str(tmp_path / "n_labels.tif")]) == 0
    rois = roifile.roiread(tmp_path / "n_rois.zip")
    assert [(label_from_name(r.name), r.position) for r in rois] == pairs(lab) and ":" in rois[0].name
    movie = np.stack([lab, lab[:, ::-1]])
    write_tiff(tmp_path / "m.tif", np.stack([movie, movie], axis=2).astype(np.uint8), "TZCYX")  # two channels
    labels_to_roi_zip(movie, tmp_path / "m_rois.zip", axes="TZYX")
    assert cli_main(["labels", str(tmp_path / "m_rois.zip"), "--like", str(tmp_path / "m.tif")]) == 0
    assert np.array_equal(read_image(tmp_path / "m_labels.tif"), movie)
