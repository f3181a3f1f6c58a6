"""QC metrics against independent references: scikit-image, scipy, stardist.matching and hand-computed cases."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import dice as scipy_dice_dissimilarity
from scipy.spatial.distance import jaccard as scipy_jaccard_dissimilarity
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity
from stardist.matching import matching

from dl4mic.qc import baselines, maps
from dl4mic.qc.metrics import (AP_THRESHOLDS, DEFAULT_THRESHOLDS, average_precision, best_threshold, box_iou,
                               detection_metrics, instance_metrics, instance_metrics_many, localisation_metrics,
                               multiclass_metrics, restoration_metrics, segmentation_metrics, threshold_sweep,
                               threshold_sweep_many)

RNG = np.random.default_rng(0)


# --- restoration -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,data_range", [(np.uint8, 255.0), (np.uint16, 65535.0), (np.float32, 2.5)])
def test_restoration_matches_skimage(dtype, data_range):
    scale = data_range if dtype != np.float32 else 1.0
    target = (RNG.random((40, 50)) * scale * 0.8).astype(dtype)
    pred = np.clip(target.astype(np.float64) + RNG.normal(0, 0.05 * scale, target.shape), 0, None).astype(dtype)
    got = restoration_metrics(pred, target, data_range)
    t, p = target.astype(np.float64), pred.astype(np.float64)
    assert got["ssim"] == pytest.approx(structural_similarity(t, p, data_range=data_range))
    assert got["psnr"] == pytest.approx(peak_signal_noise_ratio(t, p, data_range=data_range))
    assert got["nrmse"] == pytest.approx(normalized_root_mse(t, p, normalization="min-max"))


def test_restoration_hand_computed():
    target = np.zeros((16, 16))
    target[:8] = 100.0
    pred = target + 1.0  # RMSE 1
    got = restoration_metrics(pred, target, data_range=255)
    assert got["psnr"] == pytest.approx(10 * math.log10(255 ** 2))
    assert got["nrmse"] == pytest.approx(1 / 100)
    perfect = restoration_metrics(target, target, data_range=255)
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["psnr"] == math.inf and perfect["nrmse"] == 0


def test_restoration_data_range_is_explicit_and_checked():
    target = RNG.random((16, 16)) * 100
    pred = target + 5
    assert restoration_metrics(pred, target, 255)["psnr"] < restoration_metrics(pred, target, 65535)["psnr"]
    with pytest.raises(ValueError):
        restoration_metrics(pred, target, 0)
    with pytest.raises(ValueError):
        restoration_metrics(pred[:8], target, 255)
    assert math.isnan(restoration_metrics(pred, np.full((16, 16), 7.0), 255)["nrmse"])  # constant target


# --- semantic segmentation ---------------------------------------------------------------------

def test_segmentation_hand_computed_and_scipy():
    pred = np.array([1, 1, 0, 0, 1], bool)
    true = np.array([1, 0, 1, 0, 1], bool)  # tp 2, fp 1, fn 1
    got = segmentation_metrics(pred, true)
    assert (got["tp"], got["fp"], got["fn"]) == (2, 1, 1)
    assert got["iou"] == pytest.approx(0.5) and got["dice"] == pytest.approx(2 / 3)
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == pytest.approx(2 / 3)
    a, b = RNG.random((30, 30)) > 0.5, RNG.random((30, 30)) > 0.4
    got = segmentation_metrics(a, b)
    assert got["iou"] == pytest.approx(1 - scipy_jaccard_dissimilarity(a.ravel(), b.ravel()))
    assert got["dice"] == pytest.approx(1 - scipy_dice_dissimilarity(a.ravel(), b.ravel()))


def test_segmentation_empty_cases():
    empty, full = np.zeros((4, 4), bool), np.ones((4, 4), bool)
    assert segmentation_metrics(empty, empty) == {"iou": 1.0, "dice": 1.0, "precision": 1.0, "recall": 1.0,
                                                  "tp": 0, "fp": 0, "fn": 0}
    missed = segmentation_metrics(empty, full)
    assert missed["iou"] == missed["dice"] == missed["precision"] == missed["recall"] == 0.0
    spurious = segmentation_metrics(full, empty)
    assert spurious["iou"] == spurious["precision"] == spurious["recall"] == 0.0


def test_threshold_sweep_matches_brute_force_and_pools_pixels():
    probs = [RNG.random((20, 20)), RNG.random((10, 30))]
    masks = [p + RNG.normal(0, 0.3, p.shape) > 0.6 for p in probs]
    rows = threshold_sweep(probs[0], masks[0])
    assert [r["threshold"] for r in rows] == list(DEFAULT_THRESHOLDS) and len(rows) == 19
    for r in rows:
        ref = segmentation_metrics(probs[0] >= r["threshold"], masks[0])
        assert all(r[k] == pytest.approx(ref[k]) for k in ("iou", "dice", "precision", "recall"))
    pooled = threshold_sweep_many(probs, masks, thresholds=[0.3, 0.5])
    flat = threshold_sweep(np.concatenate([p.ravel() for p in probs]), np.concatenate([m.ravel() for m in masks]),
                           [0.3, 0.5])
    assert pooled == flat
    exact = threshold_sweep(np.array([0.2, 0.5, 0.8]), np.array([False, True, True]), [0.5])[0]
    assert exact["iou"] == 1.0  # probability >= threshold is foreground


def test_best_threshold_prefers_metric_then_closeness_to_half():
    rows = [{"threshold": 0.3, "iou": 0.8}, {"threshold": 0.45, "iou": 0.9}, {"threshold": 0.6, "iou": 0.9}]
    assert best_threshold(rows) == 0.45
    assert best_threshold([{"threshold": 0.2, "iou": 0.1, "dice": 0.9}, {"threshold": 0.5, "iou": 0.2, "dice": 0.3}],
                          key="dice") == 0.2


# --- instance segmentation ---------------------------------------------------------------------

def _squares(spec, shape=(40, 40)):
    lab = np.zeros(shape, np.uint16)
    for i, (y, x, s) in enumerate(spec, 1):
        lab[y:y + s, x:x + s] = i
    return lab


def test_instance_matches_stardist_matching():
    true = _squares([(2, 2, 8), (20, 20, 10), (5, 25, 6)])
    pred = _squares([(3, 3, 8), (21, 18, 10), (30, 2, 5)])
    got = instance_metrics(true, pred)
    for t in (0.5, 0.3, 0.7):
        ref = matching(true, pred, thresh=t)
        row = got["at_0.5"] if t == 0.5 else next(r for r in got["per_threshold"] if r["iou_threshold"] == t)
        for k in ("tp", "fp", "fn", "precision", "recall", "accuracy", "f1", "mean_matched_score",
                  "panoptic_quality"):
            assert row[k] == pytest.approx(getattr(ref, k)), (t, k)
    assert [r["iou_threshold"] for r in got["per_threshold"]] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert got["mean_ap"] == pytest.approx(np.mean([matching(true, pred, thresh=t).accuracy for t in AP_THRESHOLDS]))


def test_instance_hand_computed_and_empty():
    true = _squares([(0, 0, 10), (20, 20, 10)])
    pred = _squares([(0, 0, 10), (0, 25, 5)])  # one exact match, one miss, one spurious
    at = instance_metrics(true, pred)["at_0.5"]
    assert (at["tp"], at["fp"], at["fn"]) == (1, 1, 1) and at["accuracy"] == pytest.approx(1 / 3)
    empty = np.zeros((8, 8), np.uint16)
    both = instance_metrics(empty, empty)
    assert both["at_0.5"]["f1"] == 1.0 and both["mean_ap"] == 1.0
    none = instance_metrics(true, np.zeros_like(true))["at_0.5"]
    assert (none["tp"], none["fn"], none["recall"], none["f1"]) == (0, 2, 0.0, 0.0)
    pooled = instance_metrics_many([true, true], [pred, true])["at_0.5"]
    assert (pooled["tp"], pooled["fp"], pooled["fn"]) == (3, 1, 1)


# --- boxes -------------------------------------------------------------------------------------

def test_box_iou_hand_computed():
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou, [[50 / 150, 0, 1]])


def test_detection_hand_computed():
    truth = [{"image": "a", "class": "cell", "xmin": 0, "ymin": 0, "xmax": 10, "ymax": 10},
             {"image": "a", "class": "cell", "xmin": 20, "ymin": 0, "xmax": 30, "ymax": 10}]
    preds = [{"image": "a", "class": "cell", "confidence": 0.9, "xmin": 0, "ymin": 0, "xmax": 10, "ymax": 10},
             {"image": "a", "class": "cell", "confidence": 0.8, "xmin": 50, "ymin": 50, "xmax": 60, "ymax": 60},
             {"image": "a", "class": "cell", "confidence": 0.7, "xmin": 22, "ymin": 0, "xmax": 32, "ymax": 10},
             {"image": "b", "class": "cell", "confidence": 0.95, "xmin": 0, "ymin": 0, "xmax": 10, "ymax": 10}]
    got = detection_metrics(truth, preds)
    c = got["per_class"]["cell"]
    assert (c["tp"], c["fp"], c["fn"]) == (2, 2, 0)  # the box in image b matches nothing
    assert c["precision"] == 0.5 and c["recall"] == 1.0 and c["f1"] == pytest.approx(2 / 3)
    # ranked: b (fp), a exact (tp), a far (fp), a shifted (tp, IoU 8/12): P-R points (0.5, 1/2), (1, 1/2)
    assert c["ap50"] == pytest.approx(0.5)
    # at IoU >= 0.7 the shifted box fails: AP 0.25 for thresholds 0.7..0.95 (6 of 10)
    assert c["ap50_95"] == pytest.approx((4 * 0.5 + 6 * 0.25) / 10)
    assert got["map50"] == pytest.approx(0.5)


def test_detection_duplicates_classes_and_no_detections():
    gt = {"image": ["a", "a"], "class": ["x", "y"], "xmin": [0, 0], "ymin": [0, 0], "xmax": [10, 10],
          "ymax": [10, 10]}
    dup = [{"image": "a", "class": "x", "confidence": c, "xmin": 0, "ymin": 0, "xmax": 10, "ymax": 10}
           for c in (0.9, 0.8)]
    got = detection_metrics(gt, dup)
    assert got["per_class"]["x"]["tp"] == 1 and got["per_class"]["x"]["fp"] == 1  # a duplicate is a false positive
    assert got["per_class"]["x"]["ap50"] == pytest.approx(1.0)
    assert got["per_class"]["y"]["ap50"] == 0.0 and got["per_class"]["y"]["recall"] == 0.0
    assert got["map50"] == pytest.approx(0.5)
    none = detection_metrics(gt, [])
    assert none["recall"] == 0.0 and none["precision"] == 0.0 and none["map50"] == 0.0
    assert math.isnan(detection_metrics([], [])["map50"])
    assert average_precision(np.array([True, False, True]), 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    arr = detection_metrics(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10]]))
    assert arr["f1"] == 1.0 and arr["map50_95"] == 1.0


# --- points ------------------------------------------------------------------------------------

def test_localisation_hand_computed():
    got = localisation_metrics([(0, 0), (10, 10)], [(0.5, 0), (10, 12), (50, 50)], tolerance=1.0)
    assert (got["tp"], got["fp"], got["fn"]) == (1, 2, 1)
    assert got["jaccard"] == pytest.approx(0.25) and got["rmse"] == pytest.approx(0.5)
    assert got["precision"] == pytest.approx(1 / 3) and got["recall"] == 0.5


def test_localisation_assignment_maximises_matches_and_respects_frames():
    # greedy nearest-first would pair t1-p1 (0.5) and lose t2; the optimal assignment finds two pairs
    got = localisation_metrics([(0, 0), (1.1, 0)], [(0.5, 0), (-0.9, 0)], tolerance=1.0)
    assert got["tp"] == 2 and got["rmse"] == pytest.approx(math.sqrt((0.81 + 0.36) / 2))
    framed = localisation_metrics([(0, 0)], [(0, 0)], 1.0, true_frames=[1], pred_frames=[2])
    assert framed["tp"] == 0 and math.isnan(framed["rmse"])
    empty = localisation_metrics([], [], 1.0)
    assert empty["jaccard"] == 1.0 and empty["f1"] == 1.0
    nothing = localisation_metrics([(1, 1)], [], 1.0)
    assert nothing["recall"] == 0.0 and nothing["fn"] == 1


# --- baselines and maps ------------------------------------------------------------------------

def test_affine_fit_and_gaussian_baseline():
    x = RNG.random((20, 20))
    np.testing.assert_allclose(baselines.affine_fit(x, 3 * x + 7), 3 * x + 7)
    clean = np.zeros((48, 48))
    clean[10:30, 10:30] = 200
    noisy = clean + RNG.normal(0, 40, clean.shape)
    sigma, scores = baselines.choose_sigma([noisy], [clean], 255.0)
    assert sigma in baselines.SIGMAS and scores[sigma] == max(scores.values())
    b = baselines.restoration_baselines(noisy, clean, sigma)
    ssim = {k: restoration_metrics(v, clean, 255)["ssim"] for k, v in b.items()}
    assert ssim["gaussian"] > ssim["input"]
    assert baselines.restoration_baselines(noisy[:10], clean, sigma) == {}
    # same units: scored as they are; other units: mapped onto the target's intensities first
    np.testing.assert_array_equal(b["input"], noisy)
    fitted = baselines.restoration_baselines(noisy / 100, clean, sigma, fit=True)
    np.testing.assert_allclose(fitted["input"], baselines.affine_fit(noisy, clean))


def test_otsu_picks_polarity():
    img = np.full((32, 32), 200.0)
    img[8:16, 8:16] = 20  # dark structure
    true = img < 100
    masks, polarity, _ = baselines.otsu_baseline([img], [true])
    assert polarity == "dark" and segmentation_metrics(masks[0], true)["iou"] == 1.0
    masks, polarity, _ = baselines.otsu_baseline([img], [~true])
    assert polarity == "bright"
    assert baselines.otsu_instances(img, "dark").max() == 1


def test_maps():
    t, p = RNG.random((20, 20)) * 100, RNG.random((20, 20)) * 100
    np.testing.assert_allclose(maps.rse_map(p, t), np.sqrt((p - t) ** 2), rtol=1e-6)
    s = maps.ssim_map(p, t, 100.0)
    assert s.shape == t.shape and s[3:-3, 3:-3].mean() == pytest.approx(structural_similarity(t, p, data_range=100.0),
                                                                        rel=1e-5)
    codes = maps.error_codes(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    assert codes.tolist() == [maps.TP, maps.FP, maps.FN, maps.TN]
    true = _squares([(0, 0, 10), (20, 20, 10)])
    pred = _squares([(0, 0, 10), (0, 25, 5)])
    inst = maps.instance_error_codes(true, pred)
    assert inst[5, 5] == maps.TP and inst[25, 25] == maps.FN and inst[2, 27] == maps.FP
    assert maps.overlay(RNG.random((20, 20)), codes.reshape(2, 2).repeat(10, 0).repeat(10, 1)).shape == (20, 20, 3)


# --- multi-class segmentation ------------------------------------------------------------------

def test_multiclass_hand_computed():
    true = np.array([[0, 1, 1], [2, 2, 0]])
    pred = np.array([[0, 1, 2], [2, 0, 0]])
    got = multiclass_metrics(pred, true, n_classes=3)
    # class 1: tp 1, fp 0, fn 1; class 2: tp 1, fp 1, fn 1
    assert got == pytest.approx({"iou_c1": 1 / 2, "dice_c1": 2 / 3, "iou_c2": 1 / 3, "dice_c2": 1 / 2,
                                 "iou": 5 / 12, "dice": 7 / 12})
    absent = multiclass_metrics(pred, true, n_classes=4)  # class 3 in neither mask: perfect agreement
    assert absent["iou_c3"] == absent["dice_c3"] == 1.0 and absent["iou"] == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    for k in (1, 2):  # each class is the binary segmentation of that class
        ref = segmentation_metrics(pred == k, true == k)
        assert got[f"iou_c{k}"] == pytest.approx(ref["iou"]) and got[f"dice_c{k}"] == pytest.approx(ref["dice"])
    assert multiclass_metrics(true.astype(np.float32), true, 3)["iou"] == 1.0
    for bad in (dict(pred_classes=pred, true_classes=true, n_classes=2),  # label 2 out of range
                dict(pred_classes=pred[:1], true_classes=true, n_classes=3),
                dict(pred_classes=pred, true_classes=true, n_classes=1),
                dict(pred_classes=pred + 0.5, true_classes=true, n_classes=5)):
        with pytest.raises(ValueError):
            multiclass_metrics(**bad)


def test_gray_follows_the_axes_it_is_given():
    rgb = RNG.random((20, 20, 3))
    np.testing.assert_allclose(baselines.gray(rgb), rgb.mean(-1))  # the historic 2D rule
    np.testing.assert_allclose(baselines.gray(rgb, "YXC"), rgb.mean(-1))
    stack = RNG.random((9, 20, 3))  # a Z stack 3 pixels wide: only explicit axes keep it a stack
    np.testing.assert_array_equal(baselines.gray(stack, "ZYX"), stack)
    rgba = RNG.random((4, 10, 10))
    np.testing.assert_allclose(baselines.gray(rgba, "CYX"), rgba[:3].mean(0))
    vol = RNG.random((9, 20, 20))
    np.testing.assert_array_equal(baselines.gray(vol), vol)  # no colour axis: nothing averaged
    with pytest.raises(ValueError):
        baselines.gray(stack, "YX")
