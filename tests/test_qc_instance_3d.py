"""Instance QC on stacks (Z, Y, X): the 0.1-0.9 IoU table, the Otsu and watershed baselines, TP/FP/FN outline
figures, end to end with a fake model whose labels are known."""

import csv
import hashlib
import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402
import yaml  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402
from stardist.matching import matching_dataset  # noqa: E402

from dl4mic.data.io import write_tiff  # noqa: E402
from dl4mic.qc import baselines, maps, plots  # noqa: E402
from dl4mic.qc.metrics import (INSTANCE_THRESHOLDS, instance_metrics, match_instances,  # noqa: E402
                               pool_instances)
from dl4mic.qc.run import run_qc  # noqa: E402
from qc_fakes import FakeModel, model_folder  # noqa: E402

SHAPE = (20, 48, 48)
# A and B overlap a little (a neck joins them: one connected component), C and D stand alone; D lies
# wholly above the middle plane (z = 10), so only the projection shows it.
BALLS = {"A": ((9, 14, 14), 5), "B": ((9, 14, 23), 5), "C": ((9, 34, 14), 5), "D": ((15, 34, 34), 4)}


def _balls(shape, balls, spacing=(1.0, 1.0, 1.0)):
    """Labels 1..n of balls given by (centre, radius) in physical units (voxel `spacing`, Z, Y, X)."""
    z, y, x = (g * s for g, s in zip(np.ogrid[tuple(slice(0, n) for n in shape)], spacing))
    lab = np.zeros(shape, np.uint16)
    for i, ((cz, cy, cx), r) in enumerate(balls, 1):
        lab[((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r ** 2) & (lab == 0)] = i
    return lab


def _image(labels, noise=5.0, seed=0):
    """Bright objects on a dark background with blurred edges and camera noise (uint8)."""
    img = gaussian_filter(np.where(labels > 0, 200.0, 20.0), 1) + np.random.default_rng(seed).normal(0, noise,
                                                                                                     labels.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _n(labels):
    return len(np.unique(labels)) - 1


# --- baselines ---------------------------------------------------------------------------------

def test_watershed_splits_touching_balls_that_components_merge():
    truth = _balls(SHAPE, BALLS.values())
    img = _image(truth)
    cc = baselines.otsu_instances(img, "bright", axes="ZYX")
    ws = baselines.otsu_watershed_instances(img, "bright", axes="ZYX")
    assert cc.dtype == ws.dtype == np.uint16 and cc.shape == ws.shape == SHAPE
    assert _n(cc) == 3 and _n(ws) == 4  # A+B are one component; the watershed cuts them apart
    assert instance_metrics(truth, cc)["at_0.5"]["tp"] == 2
    at = instance_metrics(truth, ws)["at_0.5"]
    assert (at["tp"], at["fp"], at["fn"]) == (4, 0, 0)
    # the cut runs through the neck: each half is one ball
    assert ws[9, 14, 12] != ws[9, 14, 25] and cc[9, 14, 12] == cc[9, 14, 25]


def test_watershed_does_not_split_a_ball_with_a_rough_border():
    """Bumps of a noisy Otsu border make shallow distance peaks; they must not become objects (without the
    1.5-voxel peak height rule, 4, 2 and 2 objects come out of these three balls)."""
    from scipy.ndimage import binary_dilation

    ball = _balls((24, 40, 40), [((12, 20, 20), 8)]) > 0
    shell = np.argwhere(binary_dilation(ball) & ~ball)
    for seed in range(3):
        rough = ball.copy()
        for z, y, x in shell[np.random.default_rng(seed).choice(len(shell), 40, replace=False)]:
            rough[z - 1:z + 2, y - 1:y + 2, x - 1:x + 2] = True  # a 3x3x3 bump standing 2 voxels out
        assert _n(baselines.distance_watershed(rough)) == 1, seed


def test_watershed_keeps_an_elongated_object_whole():
    """Two discs of radius 16: 13 px apart they make one peanut-shaped object (its second peak lies inside
    the first one's inscribed disc), 24 px apart two objects."""
    yy, xx = np.mgrid[:48, :80]

    def peanut(d):
        return ((yy - 24) ** 2 + (xx - 20) ** 2 <= 256) | ((yy - 24) ** 2 + (xx - 20 - d) ** 2 <= 256)

    assert _n(baselines.distance_watershed(peanut(13))) == 1
    assert _n(baselines.distance_watershed(peanut(24))) == 2


def test_watershed_measures_distances_in_the_voxel_size():
    """Anisotropic voxels (Z four times coarser): overlapping round nuclei, two stacked along Z, one beside."""
    spacing, shape = (1.0, 0.25, 0.25), (20, 64, 64)
    truth = _balls(shape, [((6.0, 8.0, 8.0), 3.0), ((11.0, 8.0, 8.0), 3.0), ((6.0, 8.0, 13.5), 3.0)], spacing)
    mask = truth > 0
    assert _n(baselines.connected_components(mask)) == 1  # all three touch
    physical = baselines.distance_watershed(mask, spacing)
    at = instance_metrics(truth, physical)["at_0.5"]
    assert (at["tp"], at["fp"], at["fn"]) == (3, 0, 0)
    in_pixels = baselines.distance_watershed(mask)  # Z counted like X: the coarse planes look like a thin slab
    assert instance_metrics(truth, in_pixels)["at_0.5"]["tp"] < 3
    with pytest.raises(ValueError):
        baselines.distance_watershed(mask, (1.0, 1.0))


def test_watershed_in_2d_and_on_edge_cases():
    yy, xx = np.mgrid[:40, :40]
    discs = np.zeros((40, 40), np.uint16)
    discs[(yy - 20) ** 2 + (xx - 12) ** 2 <= 36] = 1
    discs[((yy - 20) ** 2 + (xx - 23) ** 2 <= 36) & (discs == 0)] = 2
    ws = baselines.distance_watershed(discs > 0)
    assert _n(baselines.connected_components(discs > 0)) == 1 and instance_metrics(discs, ws)["at_0.5"]["tp"] == 2
    assert baselines.distance_watershed(np.ones((8, 8), bool)).max() == 1  # all foreground: one object
    assert baselines.distance_watershed(np.zeros((3, 8, 8), bool)).max() == 0
    tiny = np.zeros((5, 9, 9), bool)
    tiny[2, 4, 4] = tiny[2, 1, 1] = True  # single voxels: no peak stands 1.5 voxels high, still objects
    assert _n(baselines.distance_watershed(tiny)) == 2


def test_polarity_counts_equal_the_masks_own_counts():
    rng = np.random.default_rng(1)
    b, t = rng.random((6, 10, 10)) > 0.5, rng.random((6, 10, 10)) > 0.4
    c = baselines.polarity_counts(b, t)
    for name, pred in (("bright", b), ("dark", ~b)):
        tp, fp, fn = (int(np.sum(pred & t)), int(np.sum(pred & ~t)), int(np.sum(~pred & t)))
        assert c[name] == (tp, fp, fn)
    assert baselines.choose_polarity([baselines.polarity_counts(t, t)]) == "bright"
    assert baselines.choose_polarity([baselines.polarity_counts(~t, t)]) == "dark"
    assert baselines.compact_labels(np.array([0, 70000])).dtype == np.uint32


# --- metrics and maps --------------------------------------------------------------------------

def test_pooled_matching_equals_stardist_matching_dataset():
    truths = [_balls(SHAPE, BALLS.values()), _balls(SHAPE, [BALLS["A"], BALLS["C"]])]
    preds = [_balls(SHAPE, [((9, 15, 14), 5), ((9, 14, 24), 4), ((4, 40, 40), 3)]),
             _balls(SHAPE, [((9, 14, 15), 5), ((9, 34, 14), 5)])]
    got = pool_instances([match_instances(t, p) for t, p in zip(truths, preds)])
    assert [r["iou_threshold"] for r in got["per_threshold"]] == list(INSTANCE_THRESHOLDS)
    for row in got["per_threshold"]:
        ref = matching_dataset(truths, preds, thresh=row["iou_threshold"], show_progress=False)
        for k in ("tp", "fp", "fn", "n_true", "n_pred", "precision", "recall", "accuracy", "f1",
                  "mean_true_score", "mean_matched_score", "panoptic_quality"):
            assert row[k] == pytest.approx(getattr(ref, k), abs=1e-6), (row["iou_threshold"], k)
    assert got["per_threshold"][0]["tp"] > got["per_threshold"][-1]["tp"]  # looser IoU, more matches


def test_outlines_of_a_volume_show_the_middle_plane_and_each_objects_projection():
    truth = _balls(SHAPE, BALLS.values())
    pred = truth.copy()
    pred[pred == 3] = 0  # C missed
    pred[_balls(SHAPE, [((9, 6, 40), 3)]) > 0] = 9  # a spurious object
    match = match_instances(truth, pred)
    assert sorted(match["pairs"]) == [(1, 1), (2, 2), (4, 4)]
    codes = maps.instance_error_codes(truth, pred, pairs=match["pairs"])
    np.testing.assert_array_equal(codes, maps.instance_error_codes(truth, pred))  # same as matching anew
    assert codes[9, 14, 14] == maps.TP and codes[9, 34, 14] == maps.FN and codes[9, 6, 40] == maps.FP
    middle, projected = maps.instance_outlines(truth, pred, match["pairs"])
    assert middle.shape == projected.shape == SHAPE[1:] and middle.dtype == np.uint8
    # outlines, not filled objects: the rim is coded, the centre is not
    assert middle[14, 10] == maps.TP and middle[14, 14] == 0  # plane 10: A's rim is at x = 10
    assert middle[6, 38] == maps.FP and middle[6, 40] == 0
    # a missed object is ringed just outside its border (x = 10 is C's own rim, x = 9 outside it)
    assert middle[34, 9] == maps.FN and middle[34, 10] == 0
    # D (z 11..19) is not in the middle plane but its projection's outline is drawn
    assert not middle[30:39, 30:39].any() and projected[34, 30] == maps.TP and projected[34, 34] == 0
    (flat,) = maps.instance_outlines(truth[9], pred[9], match_instances(truth[9], pred[9])["pairs"])
    assert flat[34, 8] == maps.FN and flat[34, 9] == 0 and flat[14, 9] == maps.TP
    merged = np.where(truth[9] > 0, 1, 0)  # A, B and C predicted as one object: FP inside three FN rings
    (flat,) = maps.instance_outlines(truth[9], merged, match_instances(truth[9], merged)["pairs"])
    assert flat[14, 9] == maps.FP and flat[14, 8] == maps.FN and flat[14, 28] == maps.FP and flat[34, 8] == maps.FN


def test_instance_figure_of_a_volume_has_two_rows(tmp_path):
    from PIL import Image

    truth = _balls(SHAPE, BALLS.values())
    match = match_instances(truth, truth)
    fig = plots.instance_errors_figure("vol", _image(truth), truth, truth, maps.instance_outlines(truth, truth,
                                                                                              match["pairs"]),
                                       {"F1": 1.0, "TP": 4}, axes="ZYX")
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert len(titles) == 8 and sum("middle Z plane 11/20" in t for t in titles) == 4
    assert sum("max projection along Z" in t for t in titles) == 4
    png = plots.save(fig, tmp_path / "vol.png")
    w, h = Image.open(png).size
    assert h > 0.45 * w
    two_channels = np.stack([_image(truth)[9], _image(truth, seed=1)[9]])  # CYX
    flat = maps.instance_outlines(truth[9], truth[9], match_instances(truth[9], truth[9])["pairs"])
    fig = plots.instance_errors_figure("img", two_channels, truth[9], truth[9], flat, axes="CYX")
    assert len([ax for ax in fig.axes if ax.images]) == 4


# --- dl4mic qc end to end ----------------------------------------------------------------------

SPACING = (0.5, 0.5, 0.5)
STACKS = {"s0": [BALLS["A"], BALLS["B"], BALLS["C"], BALLS["D"]],
          "s1": [((8, 12, 30), 5), ((8, 21, 30), 5), ((11, 36, 12), 5)]}


def _key(image) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class KnownLabels(FakeModel):
    """A 'model' that returns given labels for each test stack (looked up by its pixels)."""

    def __init__(self, model_dir, answers):
        super().__init__(model_dir, task="instance")
        self.answers = answers

    def predict(self, image, axes=None):
        assert axes == "ZYX"
        return {"labels": self.answers[_key(image)]}


@pytest.fixture()
def stacks(tmp_path):
    src, tgt = tmp_path / "data" / "images", tmp_path / "data" / "labels"
    src.mkdir(parents=True), tgt.mkdir(parents=True)
    truths, images = {}, {}
    for i, (name, balls) in enumerate(STACKS.items()):
        truths[name] = _balls(SHAPE, balls)
        images[name] = _image(truths[name], seed=i)
        write_tiff(src / f"{name}.tif", images[name], "ZYX", SPACING)
        write_tiff(tgt / f"{name}.tif", truths[name], "ZYX", SPACING)
    model = model_folder(tmp_path, "stardist2d")
    config = yaml.safe_load((model / "model.yaml").read_text())
    config.update(axes="ZYX", spacing=list(SPACING), geometry={"axes": "ZYX"})
    (model / "model.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return model, src, tgt, truths, images


def _table(summary, method):
    return [r for r in summary["instance_thresholds"] if r["method"] == method]


def test_instance_qc_of_stacks_perfect_prediction(stacks):
    from PIL import Image

    model, src, tgt, truths, images = stacks
    answers = {_key(images[n]): truths[n] for n in STACKS}
    summary = run_qc(KnownLabels(model, answers), src, tgt, progress="none")
    qc = model / "qc"
    rows = _table(summary, "model")
    assert [r["iou_threshold"] for r in rows] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    for r in rows:
        assert (r["f1"], r["precision"], r["recall"], r["panoptic_quality"]) == (1.0, 1.0, 1.0, 1.0)
        assert (r["tp"], r["fp"], r["fn"]) == (7, 0, 0)
    assert summary["pooled"]["mean_ap"] == 1.0 and summary["pooled_mean_ap"]["model"] == 1.0
    for r, p in zip(rows, summary["pooled"]["per_threshold"]):  # the table is the pooled rows, method named
        assert all(r[k] == p[k] for k in ("iou_threshold", "f1", "precision", "recall", "panoptic_quality", "tp"))

    # both baselines, named, scored per image and pooled; the watershed splits the two touching pairs
    assert set(summary["metrics"]) == {"model", "otsu", "watershed"} == {"model", *summary["baselines"]}
    assert summary["watershed_voxel_sizes"] == {"s0.tif": list(SPACING), "s1.tif": list(SPACING)}
    otsu, ws = summary["pooled_otsu"]["at_0.5"], summary["pooled_watershed"]["at_0.5"]
    assert (otsu["tp"], otsu["n_pred"]) == (3, 5)  # A+B and the s1 pair are merged
    assert (ws["tp"], ws["fp"], ws["fn"]) == (7, 0, 0)
    assert summary["metrics"]["watershed"]["f1"] > summary["metrics"]["otsu"]["f1"]
    assert summary["metrics"]["model"]["f1"] == 1.0 and summary["otsu_polarity"] == "bright"

    with open(qc / "instance_thresholds.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 27 and {r["method"] for r in table} == {"model", "otsu", "watershed"}
    assert {"iou_threshold", "f1", "precision", "recall", "panoptic_quality"} <= set(table[0])
    on_disk = json.loads((qc / "summary.json").read_text())
    assert [float(r["f1"]) for r in table if r["method"] == "otsu"] == pytest.approx(
        [r["f1"] for r in _table(on_disk, "otsu")], rel=1e-5)
    with open(qc / "metrics.csv", newline="") as fh:
        per_image = list(csv.DictReader(fh))
    assert [r["image"] for r in per_image] == ["s0.tif", "s1.tif"]
    assert {"model_f1", "otsu_f1", "watershed_f1", "watershed_mean_ap"} <= set(per_image[0])

    for f in ("maps/s0.png", "maps/s1.png", "example.png", "instance_thresholds.png", "report.pdf",
              "predictions/s0_labels.tif", "maps/s0_errors.tif"):
        assert (qc / f).is_file(), f
    w, h = Image.open(qc / "maps" / "s0.png").size
    assert h > 0.45 * w  # two rows: middle plane and projection
    with tifffile.TiffFile(qc / "predictions" / "s0_labels.tif") as tif:
        assert tif.series[0].axes == "ZYX" and tif.imagej_metadata["spacing"] == pytest.approx(0.5)
        np.testing.assert_array_equal(tif.asarray(), truths["s0"])


def test_instance_qc_of_stacks_missing_one_ball(stacks):
    model, src, tgt, truths, images = stacks
    missed = truths["s0"].copy()
    missed[missed == 4] = 0  # D is not found
    answers = {_key(images["s0"]): missed, _key(images["s1"]): truths["s1"]}
    summary = run_qc(KnownLabels(model, answers), src, tgt, progress="none")
    for r in _table(summary, "model"):
        assert (r["tp"], r["fp"], r["fn"]) == (6, 0, 1)
        assert r["recall"] == pytest.approx(6 / 7) and r["precision"] == 1.0
        assert r["f1"] == pytest.approx(12 / 13)
    assert summary["pooled"]["mean_ap"] == pytest.approx(6 / 7)
    codes = tifffile.imread(model / "qc" / "maps" / "s0_errors.tif")
    assert codes[15, 34, 34] == maps.FN and codes[9, 14, 14] == maps.TP
    assert summary["metrics"]["model"]["recall"] == pytest.approx((3 / 4 + 1) / 2)  # mean over the two stacks
