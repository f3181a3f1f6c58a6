"""3D ROI sets in real ImageJ 1.x: each nucleus slice by slice in the ROI Manager, at its slice (and frame)."""

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dl4mic.data.io import write_tiff
from dl4mic.fiji.scripting import run_script
from dl4mic.predict.rois import labels_to_roi_zip, parse_name, roi_zip_to_labels

from test_rois_3d import nuclei, pairs
from .conftest import SCRIPTS


def open_tiff(path):
    from ij import IJ

    imp = IJ.openImage(str(path))
    assert imp is not None, path
    return imp


def test_zyx_zip_opens_one_roi_per_nucleus_and_slice(ij, rm, tmp_path):
    lab = nuclei()
    imp = open_tiff(write_tiff(tmp_path / "n_labels.tif", lab, "ZYX"))
    assert (imp.getNSlices(), imp.getNFrames(), imp.isHyperStack()) == (lab.shape[0], 1, False)
    rois = ij.read_rois(labels_to_roi_zip(lab, tmp_path / "n_rois.zip", axes="ZYX"))
    ij.show_rois(rois, imp)
    got = ij.manager_rois()
    assert [(parse_name(str(r.getName()))[0], int(r.getPosition())) for r in got] == pairs(lab)
    assert all(int(r.getZPosition()) == int(r.getPosition()) for r in got)
    for index in (0, len(got) - 1):  # choosing a ROI in the ROI Manager shows its slice
        rm.select(imp, index)
        assert imp.getCurrentSlice() == got[index].getPosition()
    assert np.array_equal(ij.rois_to_labels(got, lab.shape), lab)
    # ImageJ labels a Z-stack the same way: same names, slices and order
    assert [(str(r.getName()), int(r.getPosition())) for r in ij.labels_to_rois(imp)] == \
           [(str(r.getName()), int(r.getPosition())) for r in got]
    saved = tmp_path / "saved.zip"  # and the ROI Manager's own file reads back in Python
    assert rm.runCommand("Save", str(saved))
    assert np.array_equal(roi_zip_to_labels(saved, lab.shape), lab)


def test_tzyx_zip_keeps_slice_and_frame_on_a_hyperstack(ij, rm, tmp_path):
    lab = np.stack([nuclei(), np.roll(nuclei(), 5, axis=2)])
    imp = open_tiff(write_tiff(tmp_path / "m_labels.tif", lab, "TZYX"))
    assert (imp.getNSlices(), imp.getNFrames(), imp.isHyperStack()) == (lab.shape[1], 2, True)
    ij.show_rois(ij.read_rois(labels_to_roi_zip(lab, tmp_path / "m_rois.zip", axes="TZYX")), imp)
    got = ij.manager_rois()
    assert len(got) == len(pairs(lab[0])) + len(pairs(lab[1]))
    for roi in got:
        _, z, t = parse_name(str(roi.getName()))
        assert (int(roi.getZPosition()), int(roi.getTPosition()), int(roi.getPosition())) == (z, t, 0)
    last = len(got) - 1
    rm.select(imp, last)
    _, z, t = parse_name(str(got[last].getName()))
    assert (imp.getSlice(), imp.getFrame()) == (z, t)
    assert np.array_equal(ij.rois_to_labels(got, lab.shape), lab)
    assert [str(r.getName()) for r in ij.labels_to_rois(imp)] == [str(r.getName()) for r in got]


def test_labels_to_roi_manager_and_back_to_a_training_target_on_a_hyperstack(ij, rm, tmp_path):
    lab = np.stack([nuclei(), nuclei()[::-1]])
    imp = open_tiff(write_tiff(tmp_path / "m.tif", lab, "TZYX", spacing=(2.0, 0.5, 0.5)))
    imp.show()
    run_script(SCRIPTS / "Labels_to_ROI_Manager.py", {"labels": imp, "replace": True}, ij)
    assert rm.getCount() == len(pairs(lab[0])) + len(pairs(lab[1]))
    run_script(SCRIPTS / "ROI_Manager_to_training_masks.py", {"image": imp, "target_dir": tmp_path / "target",
               "kind": "label image (instances)", "overwrite": False}, ij)
    with tifffile.TiffFile(tmp_path / "target" / "m.tif") as tif:
        assert tif.series[0].axes == "TZYX" and np.array_equal(tif.asarray(), lab)
        assert tif.imagej_metadata["spacing"] == pytest.approx(2.0)


FAKE_PREDICT = textwrap.dedent('''
    """A stand-in for `dl4mic predict`: labels every connected blob of the input, frame by frame."""
    import json, os, sys
    import numpy as np
    from scipy import ndimage
    from dl4mic.data.io import read_image_with_meta, write_tiff
    from dl4mic.predict.rois import labels_to_roi_zip
    args = sys.argv[1:]
    source, out = args[args.index("--input") + 1], args[args.index("--output") + 1]
    image, meta = read_image_with_meta(source)
    with open(os.environ["FAKE_PREDICT_LOG"], "w") as fh:
        json.dump({"input": source, "axes": meta.axes, "spacing": meta.spacing, "shape": image.shape}, fh)
    frames = image if meta.axes.startswith("T") else image[None]
    labels = np.stack([ndimage.label(f > 0)[0] for f in frames]).astype(np.uint16)
    labels = labels if meta.axes.startswith("T") else labels[0]
    stem = os.path.basename(source).rsplit(".", 1)[0]
    write_tiff(os.path.join(out, stem + "_labels.tif"), labels, meta.axes, spacing=meta.spacing)
    if "--rois" in args:
        labels_to_roi_zip(labels, os.path.join(out, stem + "_rois.zip"), axes=meta.axes)
    print(json.dumps({"event": "done"}), flush=True)
''')


@pytest.mark.parametrize("axes", ["ZYX", "TZYX"])
def test_predict_runs_on_the_open_stack(ij, rm, tmp_path, monkeypatch, axes):
    from ij import WindowManager

    script = tmp_path / "fake_predict.py"
    script.write_text(FAKE_PREDICT)
    monkeypatch.setenv("DL4MIC_COMMAND", json.dumps([sys.executable, str(script)]))
    monkeypatch.setenv("DL4MIC_FIJI_MODE", "cli")
    monkeypatch.setenv("FAKE_PREDICT_LOG", str(tmp_path / "log.json"))
    raw = (nuclei() > 0).astype(np.uint8) * 200
    raw = raw if axes == "ZYX" else np.stack([raw, np.roll(raw, 3, axis=2)])
    imp = open_tiff(write_tiff(tmp_path / "data" / "my cells.tif", raw, axes, spacing=(2.0, 0.5, 0.5)))
    imp.show()
    out = tmp_path / "out"
    out.mkdir()
    run_script(SCRIPTS / "Predict.py", {"model": tmp_path / "m", "input": None, "output": out, "rois": True,
                                        "show": True}, ij)
    seen = json.loads((tmp_path / "log.json").read_text())
    assert seen["axes"] == axes and seen["shape"] == list(raw.shape)
    assert seen["spacing"] == pytest.approx([2.0, 0.5, 0.5])  # ImageJ's writer kept the calibration
    assert not Path(seen["input"]).exists()  # the temporary copy is gone
    titles = {str(WindowManager.getImage(i).getTitle()) for i in WindowManager.getIDList()}
    assert titles == {"my cells.tif", "my_cells_labels.tif"}
    lab = tifffile.imread(out / "my_cells_labels.tif")
    expected = len(pairs(lab)) if axes == "ZYX" else sum(len(pairs(f)) for f in lab)
    got = ij.manager_rois()
    assert len(got) == expected and np.array_equal(ij.rois_to_labels(got, lab.shape), lab)
    if axes == "TZYX":
        assert all(r.getTPosition() > 0 and r.getZPosition() > 0 for r in got)
    else:
        assert all(r.getPosition() > 0 for r in got)


def test_predict_without_input_or_open_image_says_what_to_do(ij, rm, tmp_path, capfd):
    run_script(SCRIPTS / "Predict.py", {"model": tmp_path / "m", "input": None, "output": tmp_path, "rois": True,
                                        "show": True}, ij)
    assert "no image is open" in capfd.readouterr().out
