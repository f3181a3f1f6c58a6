"""The menu scripts in real Jython 2.7 with ImageJ 1.x, as Fiji runs them, calling the real `dl4mic` CLI."""

import json

import numpy as np
import pytest
import tifffile

from dl4mic.fiji import labels_to_roi_zip
from dl4mic.fiji.jython import JythonError, code_step, open_step

from .test_rois_pure import ZEROCOST_WIDE


def rect(roi):
    return (roi["name"], *roi["bounds"])


def test_jython_labels_and_roi_zip_scripts_round_trip(jython, labels, tmp_path):
    image = tmp_path / "cells_labels.tif"
    tifffile.imwrite(image, labels)
    zip_path = labels_to_roi_zip(labels, tmp_path / "cells_rois.zip")
    masks = tmp_path / "masks"
    masks.mkdir()
    session = jython.run([
        open_step(image),
        jython.script("Labels_to_ROI_Manager.py", {"replace": True}),
        code_step("record['from_labels'] = [(r.getName(), len(r.getContainedPoints())) "
                  "for r in RoiManager.getInstance().getRoisAsArray()]"),
        jython.script("ROI_zip_to_ROI_Manager.py", {"roi_file": zip_path, "replace": True}),
        jython.script("ROI_Manager_to_training_masks.py", {"target_dir": masks, "kind": "label image (instances)"}),
    ])
    # one ROI per object, holes and parts kept: the pixel count of each label, by both scripts
    expected = [[f"label-{v}", int((labels == v).sum())] for v in np.unique(labels)[1:]]
    assert session.record["from_labels"] == expected
    assert [[r["name"], r["area"]] for r in session.rois] == expected
    assert session.current == "cells_labels.tif"
    written = tifffile.imread(masks / "cells_labels.tif")
    assert np.array_equal(written, labels)  # the ROI names carry the label values


def test_jython_boxes_csv_becomes_rectangles(jython, tmp_path):
    csv = tmp_path / "predicted_bounding_boxes.csv"
    csv.write_text(ZEROCOST_WIDE)
    tifffile.imwrite(tmp_path / "img_1.tif", np.zeros((100, 100), np.uint8))
    session = jython.run([open_step(tmp_path / "img_1.tif"),
                          jython.script("Boxes_CSV_to_ROI_Manager.py", {"csv_file": csv})])
    assert sorted(rect(r) for r in session.rois) == [("0:0.91", 10, 12, 20, 28), ("1:0.40", 50, 60, 20, 20)]
    assert {r["type"] for r in session.rois} == {"Rectangle"}


def test_jython_boxes_of_a_time_lapse_become_rectangles_on_their_frames(jython, tmp_path):
    from dl4mic.data.io import write_tiff

    image = write_tiff(tmp_path / "cells_t.tif", np.zeros((3, 40, 50), np.uint8), "TYX")
    csv = tmp_path / "cells_t_boxes.csv"
    csv.write_text("image,frame,class,confidence,xmin,ymin,xmax,ymax\n"
                   "cells_t.tif,0,cell,0.9,1,2,11,22\ncells_t.tif,2,cell,0.8,5,6,25,36\nother.tif,1,cell,0.7,0,0,4,4\n")
    session = jython.run([open_step(image), jython.script("Boxes_CSV_to_ROI_Manager.py", {"csv_file": csv})])
    assert session.images["cells_t.tif"]["frames"] == 3
    # frame is 0-based in the CSV, 1-based in ImageJ; the other image's box is left out
    assert [(r["name"], r["type"], r["bounds"], r["position"]) for r in session.rois] == [
        ("cell:0.90", "Rectangle", [1, 2, 10, 20], 1), ("cell:0.80", "Rectangle", [5, 6, 20, 30], 3)]


def test_jython_reports_a_missing_parameter_before_starting(jython, tmp_path):
    from dl4mic.errors import UserError

    with pytest.raises(UserError, match="needs a value for model"):
        jython.script("QC.py", {"source": tmp_path, "target": tmp_path})
    with pytest.raises(JythonError, match="NameError"):
        jython.run([code_step("undefined_name")])


# Records what the scripts show in Fiji's status and progress bars (dl4mic_run's IJ, wrapped), and presses
# Esc when the status first shows epoch `record['esc_at_epoch']`, as a user watching the status bar would.
STATUS_RECORDER = code_step('''
import dl4mic_run
from java.awt.event import KeyEvent
class Recorder(object):
    def __init__(self, ij):
        self.ij = ij
    def showStatus(self, text):
        record.setdefault("status", []).append(u"%s" % text)
        if "esc_at_epoch" in record and (" epoch %d/" % record["esc_at_epoch"]) in text:
            self.ij.setKeyDown(KeyEvent.VK_ESCAPE)
        self.ij.showStatus(text)
    def showProgress(self, *args):
        record.setdefault("progress", []).append([float(a) for a in args])
        self.ij.showProgress(*args)
    def __getattr__(self, name):
        return getattr(self.ij, name)
dl4mic_run.IJ = Recorder(IJ)
''')


# Records the HTML that the Train parameter dialog shows under its Help button.
HELP_RECORDER = code_step('''
import dl4mic_run
from ij.gui import GenericDialog
class Recording(GenericDialog):
    def addHelp(self, text):
        record["help"] = u"%s" % text
        GenericDialog.addHelp(self, text)
dl4mic_run.GenericDialog = Recording
''')


def esc_at_epoch(epoch):
    return code_step(f"record['esc_at_epoch'] = {epoch}")


def nuclei(shared_data, tmp_path, split, names, crop=128, binary=False):
    """Crops of DSB 2018 nuclei (images and their label masks, or 0/255 masks) as a source/target folder pair."""
    src = shared_data / "dsb2018_stage1test_nuclei_gray" / split
    pair = []
    for kind in ("images", "masks"):
        folder = tmp_path / split / kind
        folder.mkdir(parents=True)
        for name in names:
            data = tifffile.imread(src / kind / name)[:crop, :crop]
            if binary and kind == "masks":
                data = np.where(data > 0, 255, 0).astype(np.uint8)
            tifffile.imwrite(folder / name, data)
        pair.append(folder)
    return pair


def first_names(shared_data, split, n):
    return sorted(p.name for p in (shared_data / "dsb2018_stage1test_nuclei_gray" / split / "images").iterdir())[:n]


UNET_QUICK = ("epochs=2 steps_per_epoch=2 batch_size=2 patch_size=32 learning_rate=0.001 val_split=0.34 "
              "mask_foreground=nonzero")


def test_jython_train_qc_predict_export_with_the_real_cli(jython, shared_data, tmp_path):
    source, target = nuclei(shared_data, tmp_path, "train", first_names(shared_data, "train", 3), binary=True)
    test_names = first_names(shared_data, "test", 2)
    test_source, test_target = nuclei(shared_data, tmp_path, "test", test_names, binary=True)
    model, out, bundle = tmp_path / "model", tmp_path / "out", tmp_path / "unet.zip"
    out.mkdir()
    image = sorted(test_source.iterdir())[0]
    session = jython.run([
        STATUS_RECORDER, HELP_RECORDER,
        jython.script("Train.py", {"network": "unet2d", "source": source, "target": target, "model": model},
                      macro=UNET_QUICK),
        jython.script("QC.py", {"model": model, "source": test_source, "target": test_target}),
        jython.script("Predict.py", {"model": model, "input": image, "output": out, "rois": True}),
        jython.script("Export.py", {"model": model, "bundle": bundle, "zoo": True, "license": "MIT",
                                    "authors": "Ada Lovelace; Engine Lab; 0000-0002-1825-0097 | Charles Babbage",
                                    "description": "U-Net 2D for DSB 2018 nuclei (a test model)."}),
    ], timeout=900)
    assert (model / "model.yaml").is_file(), session.stdout + session.stderr
    status = session.record["status"]
    # the status and progress bars advance once per epoch from the CLI's JSON progress lines, then per image
    assert [s.split("  ")[0] for s in status] == [
        "dl4mic train: unet2d model", "dl4mic train: epoch 1/2", "dl4mic train: epoch 2/2", "dl4mic train: done",
        "dl4mic qc: QC model", f"dl4mic qc: 1/2 {test_names[0]}", f"dl4mic qc: 2/2 {test_names[1]}", "dl4mic qc: done",
        "dl4mic predict: predict model", f"dl4mic predict: 1/1 {image.name}", "dl4mic predict: done"]
    assert "loss" in status[1] and "val_loss" in status[1]
    # the parameter dialog's Help shows each basic parameter's help text from the spec
    from dl4mic.fiji.install import specs_for_fiji

    for p in specs_for_fiji()["unet2d"]["parameters"]:
        help_text = p["help"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert f"<dt><b>{p['name']}</b>" in session.record["help"] and help_text in session.record["help"]
    assert session.record["progress"][:3] == [[1.0, 2.0], [2.0, 2.0], [1.0]]
    summary = json.loads((model / "qc" / "summary.json").read_text())
    assert f"dl4mic QC of {model.name}:" in session.stdout and summary["test_data"]["n_images"] == 2
    # Export for the zoo: the dialog's authors, licence and description are in the bundle, UPLOAD.md beside it
    import zipfile

    import yaml

    rdf = yaml.safe_load(zipfile.ZipFile(bundle).read("rdf.yaml"))
    assert [a["name"] for a in rdf["authors"]] == ["Ada Lovelace", "Charles Babbage"] and rdf["license"] == "MIT"
    assert rdf["authors"][0]["orcid"] == "0000-0002-1825-0097"
    assert (bundle.parent / "UPLOAD.md").is_file()
    # the input, its outputs and one ROI per predicted object, on the input (the current image)
    assert set(session.images) == {image.name} | {f"{image.stem}_{kind}.tif" for kind in ("labels", "mask", "prob")}
    assert session.current == image.name
    (zip_path,) = out.glob("*_rois.zip")
    from dl4mic.predict.rois import read_roi_zip

    assert [r["name"] for r in session.rois] == [r.name for r in read_roi_zip(zip_path)] and session.rois


def test_jython_esc_stops_training_cleanly_and_it_resumes(jython, shared_data, tmp_path):
    from dl4mic.model_folder import read_model_config

    from helpers import cli

    source, target = nuclei(shared_data, tmp_path, "train", first_names(shared_data, "train", 3), binary=True)
    model = tmp_path / "model"
    session = jython.run([
        STATUS_RECORDER, esc_at_epoch(1),
        jython.script("Train.py", {"network": "unet2d", "source": source, "target": target, "model": model},
                      macro=UNET_QUICK.replace("epochs=2 steps_per_epoch=2", "epochs=4 steps_per_epoch=20")),
    ], timeout=600)
    assert session.record["status"][-1] == "dl4mic train: cancelled"
    assert "dl4mic: train cancelled" in session.stdout
    training = read_model_config(model)["training"]
    # SIGTERM reached training as Ctrl+C: the folder says interrupted, after its last complete epoch
    assert training["status"] == "interrupted" and 1 <= training["epochs_done"] < 4
    assert cli("train", "unet2d", "--model", model, "--resume", "--progress", "none") == 0
    training = read_model_config(model)["training"]
    assert training["status"] == "finished" and training["epochs_done"] == 4


def test_jython_user_errors_reach_the_user_as_one_sentence(jython, tmp_path):
    (tmp_path / "empty").mkdir()
    session = jython.run([jython.script("QC.py", {"model": tmp_path / "empty", "source": tmp_path,
                                                   "target": tmp_path})])
    assert session.state["steps_done"] == 1  # the script reported the error itself, it did not crash
    assert f"dl4mic QC: {tmp_path / 'empty'} is not a dl4mic model folder" in session.stdout
    assert "Traceback" not in session.stdout + session.stderr
