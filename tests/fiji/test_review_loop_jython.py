"""The review -> fix -> retrain loop, end to end as a Fiji user runs it (menu scripts in Jython 2.7):
predict StarDist 2D on real nuclei, load its ROIs, delete two and draw one through the ROI Manager,
save the corrected ROIs as training labels, `dl4mic train --from` the first model on them, QC the new model."""

import json
import shutil

import numpy as np
import tifffile

from dl4mic.fiji.jython import open_step, review_edit_step

from helpers import cli

DSB = "dsb2018_stage1test_nuclei_gray"
# A small StarDist 2D that trains in about 40 s on 2 cores: F1@0.5 about 0.5 on the DSB test images, rough
# enough that a review has something to fix.
FIRST_MODEL = {"epochs": 15, "steps_per_epoch": 40, "batch_size": 4, "patch_size": 128, "depth": 2, "filters": 16,
               "conv_after_unet": 32, "n_rays": 32, "grid": 2, "learning_rate": 0.003}
RETRAIN = {"epochs": 5, "steps_per_epoch": 40, "batch_size": 4, "patch_size": 128}


def params(values):
    return [a for k, v in values.items() for a in ("--param", f"{k}={v}")]


def review_choices(predicted, truth, n_delete=2):
    """What a reviewer fixes: the `n_delete` predicted objects that overlap a true nucleus least (IoU), and the
    largest true nucleus the model missed, outlined as a polygon ((x, y) in ImageJ's pixel coordinates)."""
    from skimage.measure import find_contours, regionprops

    def best_iou(value):
        obj = predicted == value
        return max([(obj & (truth == t)).sum() / (obj | (truth == t)).sum() for t in np.unique(truth[obj]) if t] + [0])

    worst = sorted(np.unique(predicted)[1:], key=lambda v: (best_iou(v), v))[:n_delete]
    missed = max((r for r in regionprops(truth) if not predicted[truth == r.label].any()), key=lambda r: r.area)
    contour = find_contours(np.pad(truth == missed.label, 1).astype(float), 0.5)[0] - 1  # (row, col)
    polygon = [(col + 0.5, row + 0.5) for row, col in contour[::2]]
    return [f"label-{v}" for v in worst], polygon, missed.label


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

    # the reviewer's eye: which ROIs are wrong and which nucleus is missing, from the ground truth and the
    # first model's prediction of the image (the same prediction Predict.py makes in Fiji below)
    preview = tmp_path / "preview"
    assert cli("predict", first, "--input", reviewed, "--output", preview, "--progress", "none") == 0
    predicted = tifffile.imread(preview / f"{reviewed.stem}_labels.tif")
    truth = tifffile.imread(data / "test" / "masks" / reviewed.name)
    n_predicted = len(np.unique(predicted)) - 1
    assert n_predicted >= 5
    delete, polygon, missed = review_choices(predicted, truth)
    # in Fiji: predict the open image, ROIs into the ROI Manager, delete two, draw one, save as training labels
    session = jython.run([
        open_step(reviewed),
        jython.script("Predict.py", {"model": first, "output": out, "rois": True}),
        review_edit_step(delete, polygon),
        jython.script("ROI_Manager_to_training_masks.py", {
            "image": reviewed.name, "target_dir": train_target, "kind": "label image (instances)",
            "source_dir": train_source}),
    ])
    assert np.array_equal(tifffile.imread(out / f"{reviewed.stem}_labels.tif"), predicted)
    names = [r["name"] for r in session.rois]
    assert len(names) == n_predicted - 2 + 1 and names[-1] == "drawn" and not set(delete) & set(names)

    corrected = tifffile.imread(train_target / reviewed.name)
    assert corrected.shape == predicted.shape and len(np.unique(corrected)) - 1 == n_predicted - 1
    for name in delete:  # the deleted objects are background now
        assert not np.any(corrected[predicted == int(name.split("-")[1])])
    # the drawn nucleus is one new object where the missed true nucleus is
    drawn = np.bincount(corrected[truth == missed]).argmax()
    assert drawn > 0 and not np.any(predicted[corrected == drawn])
    iou = ((corrected == drawn) & (truth == missed)).sum() / ((corrected == drawn) | (truth == missed)).sum()
    assert iou > 0.7
    assert np.array_equal(tifffile.imread(train_source / reviewed.name), tifffile.imread(reviewed))

    assert cli("train", "stardist2d", "--from", first, "--source", train_source, "--target", train_target,
               "--model", second, "--progress", "none", *params(RETRAIN)) == 0
    f1_first, f1_second = qc_f1(first, qc_source, qc_target), qc_f1(second, qc_source, qc_target)
    print(f"review loop QC on {len(held_out)} held-out DSB images: F1@0.5 first {f1_first:.3f}, "
          f"retrained {f1_second:.3f}")
    assert (second / "qc" / "report.pdf").is_file()
    # a loop that broke the pairs (a mask off its image, labels lost) would drag the retrained model down
    assert f1_second >= f1_first - 0.05
