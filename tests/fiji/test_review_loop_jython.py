"""The review -> fix -> retrain loop, end to end as a Fiji user runs it (menu scripts in Jython 2.7):
predict StarDist 2D on real nuclei, load its ROIs, delete two and draw one through the ROI Manager,
save the corrected ROIs as training labels, `dl4mic train --from` the first model on them, QC the new model."""

import json
import shutil

import numpy as np
import pytest
import tifffile

from dl4mic.fiji.jython import open_step, review_edit_step

from helpers import cli

DSB = "dsb2018_stage1test_nuclei_gray"
# A small StarDist 2D that trains in about 30 s on 2 cores and finds nuclei (weakly) on DSB test images.
FIRST_MODEL = {"epochs": 8, "steps_per_epoch": 40, "batch_size": 4, "patch_size": 128, "depth": 2, "filters": 16,
               "conv_after_unet": 32, "n_rays": 32, "grid": 2, "learning_rate": 0.001}
RETRAIN = {"epochs": 4, "steps_per_epoch": 40}


def params(values):
    return [a for k, v in values.items() for a in ("--param", f"{k}={v}")]


def qc_f1(model, source, target):
    assert cli("qc", model, "--source", source, "--target", target, "--progress", "none") == 0
    return json.loads((model / "qc" / "summary.json").read_text())["means"]["f1"]


def test_jython_review_fix_retrain_loop(jython, shared_data, tmp_path):
    data = shared_data / DSB
    first, second = tmp_path / "first", tmp_path / "second"
    assert cli("train", "stardist2d", "--source", data / "train" / "images", "--target", data / "train" / "masks",
               "--model", first, "--progress", "none", *params(FIRST_MODEL)) == 0
    # held-out QC images: the test set without the image the user reviews
    tests = sorted((data / "test" / "images").iterdir())
    reviewed, held_out = tests[0], tests[1:]
    qc_source, qc_target = tmp_path / "qc" / "images", tmp_path / "qc" / "masks"
    for folder, kind in ((qc_source, "images"), (qc_target, "masks")):
        folder.mkdir(parents=True)
        for path in held_out:
            shutil.copy(data / "test" / kind / path.name, folder / path.name)
    # the corrected image joins a copy of the training set
    train_source, train_target = tmp_path / "train" / "images", tmp_path / "train" / "masks"
    shutil.copytree(data / "train" / "images", train_source)
    shutil.copytree(data / "train" / "masks", train_target)
    out = tmp_path / "predictions"
    out.mkdir()

    session = jython.run([
        open_step(reviewed),
        jython.script("Predict.py", {"model": first, "output": out, "rois": True}),  # the image open in Fiji
        review_edit_step(f"{reviewed.stem}_labels.tif", delete=2),
        jython.script("ROI_Manager_to_training_masks.py", {
            "image": reviewed.name, "target_dir": train_target, "kind": "label image (instances)",
            "source_dir": train_source}),
    ])
    predicted = tifffile.imread(out / f"{reviewed.stem}_labels.tif")
    n_predicted = len(np.unique(predicted)) - 1
    assert n_predicted >= 5
    names = [r["name"] for r in session.rois]
    assert len(names) == n_predicted - 2 + 1 and names[-1] == "drawn"
    assert not {"label-1", "label-2"} & set(names)  # the two deleted ROIs are gone

    corrected = tifffile.imread(train_target / reviewed.name)
    assert corrected.shape == predicted.shape and len(np.unique(corrected)) - 1 == n_predicted - 1
    x, y, half = session.record["drawn"]
    assert corrected[y, x] > 0 and predicted[y, x] == 0  # the drawn nucleus is a new object
    deleted = [v for v in (1, 2)]
    assert all(not np.any(corrected[predicted == v]) for v in deleted)
    assert np.array_equal(tifffile.imread(train_source / reviewed.name), tifffile.imread(reviewed))

    assert cli("train", "stardist2d", "--from", first, "--source", train_source, "--target", train_target,
               "--model", second, "--progress", "none", *params(RETRAIN)) == 0
    f1_first, f1_second = qc_f1(first, qc_source, qc_target), qc_f1(second, qc_source, qc_target)
    print(f"review loop QC on {len(held_out)} held-out DSB images: F1@0.5 first {f1_first:.3f}, "
          f"retrained {f1_second:.3f}")
    assert (second / "qc" / "report.pdf").is_file()
    assert f1_second == pytest.approx(f1_second) and 0 <= f1_second <= 1
