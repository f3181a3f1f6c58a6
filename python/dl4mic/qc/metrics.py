"""QC metrics by task, on numpy arrays only, so any model's output (imported ones too) can be scored.

Conventions (docs/qc.md explains them to users):

* Images are 2D (Y, X) or volumes (Z, Y, X) of one channel; functions tell them apart by `ndim`.
* Restoration: scikit-image definitions with the data range given explicitly (never inferred
  from the images, which would make scores depend on the prediction). NRMSE is
  `normalized_root_mse(target, prediction, normalization="min-max")`: the RMSE divided by the
  target's (max - min).
* Semantic segmentation: pixel counts; a ratio whose denominator is zero is 1.0 when both masks
  are empty (perfect agreement) and 0.0 otherwise. A pixel is foreground when
  `probability >= threshold`.
* Multi-class segmentation: per-class pixel IoU/Dice of class-label masks, averaged over the
  foreground classes (class 0 is the background).
* Instance segmentation: `stardist.matching` (one-to-one matching by IoU). "AP" is the
  Data Science Bowl 2018 definition that StarDist reports as `accuracy`: tp / (tp + fp + fn);
  mean AP averages it over IoU 0.5:0.05:0.95. When both images are empty every ratio is 1.0.
* Boxes: greedy matching by confidence (VOC/COCO), AP as the area under the all-point
  interpolated precision-recall curve (VOC 2010+), mAP averaged over classes and IoU 0.5:0.05:0.95.
* Points: one-to-one assignment (Hungarian) that maximises the number of pairs within the
  tolerance, then minimises their total distance; Jaccard = tp / (tp + fp + fn).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# One line per metric for reports and docs: what it measures and which way is better.
METRIC_HELP = {
    "ssim": "structural similarity (0-1; 1 = identical structure), scikit-image, 7x7 window (7x7x7 on stacks)",
    "psnr": "peak signal-to-noise ratio in dB for the data range (higher is better)",
    "nrmse": "root-mean-square error divided by the target's (max - min) (lower is better)",
    "iou": "intersection over union of foreground pixels, Jaccard index (0-1)",
    "dice": "Dice coefficient, F1 of foreground pixels (0-1)",
    "precision": "fraction of predicted foreground that is true foreground",
    "recall": "fraction of true foreground that is found",
    "accuracy": "tp / (tp + fp + fn) of objects matched at IoU >= 0.5 (DSB 2018 'AP')",
    "f1": "F1 score of matched objects at IoU >= 0.5",
    "mean_matched_score": "mean IoU of the matched object pairs",
    "panoptic_quality": "mean matched IoU x F1 (Kirillov et al. 2019)",
    "mean_ap": "tp / (tp + fp + fn) averaged over IoU thresholds 0.5:0.05:0.95",
    "tp": "true positives (matched objects)", "fp": "false positives (unmatched predictions)",
    "fn": "false negatives (missed objects)",
    "map50": "mean over classes of the area under the precision-recall curve at IoU 0.5",
    "map50_95": "mean AP over classes and IoU thresholds 0.5:0.05:0.95 (COCO)",
    "jaccard": "tp / (tp + fp + fn) of points matched within the tolerance",
    "rmse": "root-mean-square distance of matched points (units of the coordinates)",
}
LOWER_IS_BETTER = {"nrmse", "rmse", "fp", "fn"}

SEG_KEYS = ("iou", "dice", "precision", "recall")
DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2).tolist())
INSTANCE_THRESHOLDS = tuple(np.round(np.arange(0.1, 0.91, 0.1), 2).tolist())
AP_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())
INSTANCE_KEYS = ("tp", "fp", "fn", "precision", "recall", "accuracy", "f1",
                 "mean_true_score", "mean_matched_score", "panoptic_quality", "n_true", "n_pred")


# --- restoration -------------------------------------------------------------------------------

SSIM_WINDOW = 7  # scikit-image's default side of the uniform SSIM window


def ssim_win_size(shape) -> int | None:
    """SSIM window side for an image (Y, X) or a volume (Z, Y, X): scikit-image's 7, except for volumes
    with a side under 7 (thin stacks: few planes), which get the largest odd side <= their smallest side
    (at least 3); None when even 3 does not fit (1-2 planes), meaning per-plane 2D SSIM.

    2D images keep the 7x7 window (they need at least 7 pixels per axis), so 2D scores never change."""
    shape = tuple(shape)
    if len(shape) != 3 or min(shape) >= SSIM_WINDOW:
        return SSIM_WINDOW
    w = min(shape) if min(shape) % 2 else min(shape) - 1
    return w if w >= 3 else None


def _ssim(target: np.ndarray, prediction: np.ndarray, data_range: float, full: bool = False):
    """SSIM (and, with `full`, the local SSIM map) by the `ssim_win_size` rule; a volume too thin for a 3D
    window is scored as the mean of its planes' 2D SSIM (the map is then the stack of per-plane maps)."""
    from skimage.metrics import structural_similarity

    win = ssim_win_size(target.shape)
    if win is not None:
        return structural_similarity(target, prediction, data_range=data_range, win_size=win, full=full)
    per_plane = [structural_similarity(t, p, data_range=data_range, full=full) for t, p in zip(target, prediction)]
    if not full:
        return float(np.mean(per_plane))
    return float(np.mean([v for v, _ in per_plane])), np.stack([m for _, m in per_plane])


def restoration_metrics(prediction, target, data_range: float) -> dict:
    """SSIM, PSNR and NRMSE of `prediction` against `target` with an explicit `data_range`.

    One channel: an image (Y, X) or a volume (Z, Y, X), told apart by `ndim` (split channels first).
    SSIM uses scikit-image's 7x7 window (images need at least 7 pixels per axis) and a 7x7x7 window on
    volumes; a volume with fewer than 7 planes gets the largest odd window that fits (>= 3), and one with
    1-2 planes the mean of its per-plane 2D SSIM (see `ssim_win_size`).
    PSNR and NRMSE are pixel-wise, hence the same in any dimension: PSNR is infinite for a perfect
    prediction; NRMSE is NaN for a constant target.
    """
    from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio

    pred = np.asarray(prediction, dtype=np.float64)
    true = np.asarray(target, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and target {true.shape} differ in shape")
    if not data_range or data_range <= 0:
        raise ValueError("data_range must be a positive number")
    mse = float(np.mean((pred - true) ** 2))
    psnr = float("inf") if mse == 0 else float(peak_signal_noise_ratio(true, pred, data_range=data_range))
    span = float(true.max() - true.min())
    nrmse = float(normalized_root_mse(true, pred, normalization="min-max")) if span > 0 else float("nan")
    ssim = float(_ssim(true, pred, data_range))
    return {"ssim": ssim, "psnr": psnr, "nrmse": nrmse}


# --- semantic segmentation ---------------------------------------------------------------------

def _ratio(num: float, den: float, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else 0.0
    return float(num) / float(den)


def metrics_from_counts(tp: int, fp: int, fn: int) -> dict:
    """IoU, Dice, precision and recall from pixel (or object) counts."""
    empty = tp + fp + fn == 0
    return {
        "iou": _ratio(tp, tp + fp + fn, empty),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, empty),
        "precision": _ratio(tp, tp + fp, empty),
        "recall": _ratio(tp, tp + fn, empty),
    }


def _counts(pred: np.ndarray, true: np.ndarray) -> tuple[int, int, int]:
    pred = np.asarray(pred, dtype=bool)
    true = np.asarray(true, dtype=bool)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and target {true.shape} differ in shape")
    tp = int(np.count_nonzero(pred & true))
    return tp, int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(true)) - tp


def segmentation_metrics(pred_mask, true_mask) -> dict:
    """Pixel IoU, Dice, precision and recall of two boolean masks (empty/empty = 1.0)."""
    tp, fp, fn = _counts(pred_mask, true_mask)
    return {**metrics_from_counts(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}


def threshold_sweep_many(probabilities, masks, thresholds=None) -> list[dict]:
    """One row per threshold with metrics of pixel counts pooled over all images (micro average).

    Pooling gives one threshold for a whole data set, weighted by pixels as the user's images are.
    """
    thresholds = DEFAULT_THRESHOLDS if thresholds is None else tuple(float(t) for t in thresholds)
    t = np.asarray(thresholds, dtype=np.float64)
    tp = np.zeros(len(t), dtype=np.int64)
    npred = np.zeros(len(t), dtype=np.int64)
    ntrue = 0
    for prob, mask in zip(probabilities, masks, strict=True):
        prob = np.asarray(prob, dtype=np.float64)
        mask = np.asarray(mask, dtype=bool)
        if prob.shape != mask.shape:
            raise ValueError(f"probability {prob.shape} and mask {mask.shape} differ in shape")
        fg = np.sort(prob[mask])
        allp = np.sort(prob.ravel())
        # pixels with prob >= t: n - (number < t)
        tp += fg.size - np.searchsorted(fg, t, side="left")
        npred += allp.size - np.searchsorted(allp, t, side="left")
        ntrue += fg.size
    rows = []
    for i, thr in enumerate(thresholds):
        fp, fn = int(npred[i] - tp[i]), int(ntrue - tp[i])
        rows.append({"threshold": thr, **metrics_from_counts(int(tp[i]), fp, fn)})
    return rows


def threshold_sweep(probability, true_mask, thresholds=None) -> list[dict]:
    """Metrics of `probability >= t` against `true_mask` for each threshold (default 0.05..0.95)."""
    return threshold_sweep_many([probability], [true_mask], thresholds)


def best_threshold(sweep_rows: Sequence[Mapping], key: str = "iou") -> float:
    """Threshold with the best `key`; ties go to the threshold closest to 0.5."""
    best = max(sweep_rows, key=lambda r: (r[key], -abs(r["threshold"] - 0.5)))
    return float(best["threshold"])


def multiclass_metrics(pred_classes, true_classes, n_classes: int) -> dict:
    """Per-class pixel IoU and Dice of two class-label masks (2D or 3D, any shape alike), for multi-label
    U-Nets: `n_classes` counts the background, so labels are 0 (background) .. n_classes - 1.

    Keys `iou_c1`, `dice_c1`, ... for each foreground class k >= 1, and `iou`, `dice`: their means over the
    foreground classes (background would dominate any average). A class absent from both masks scores
    1.0 (perfect agreement), as empty masks do in `segmentation_metrics`.
    """
    pred = np.asarray(pred_classes)
    true = np.asarray(true_classes)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and target {true.shape} differ in shape")
    n = int(n_classes)
    if n < 2:
        raise ValueError("n_classes counts the background and must be at least 2")
    for name, a in (("prediction", pred), ("target", true)):
        whole = np.issubdtype(a.dtype, np.integer) or bool(np.all(a == np.round(a)))
        if a.size and (not whole or a.min() < 0 or a.max() >= n):
            raise ValueError(f"{name} labels must be integers 0..{n - 1}")
    # confusion matrix by one bincount: rows true class, columns predicted class
    conf = np.bincount(true.astype(np.int64).ravel() * n + pred.astype(np.int64).ravel(),
                       minlength=n * n).reshape(n, n)
    out = {}
    for k in range(1, n):
        tp = int(conf[k, k])
        fp, fn = int(conf[:, k].sum()) - tp, int(conf[k, :].sum()) - tp
        c = metrics_from_counts(tp, fp, fn)
        out[f"iou_c{k}"], out[f"dice_c{k}"] = c["iou"], c["dice"]
    out["iou"] = float(np.mean([out[f"iou_c{k}"] for k in range(1, n)]))
    out["dice"] = float(np.mean([out[f"dice_c{k}"] for k in range(1, n)]))
    return out


# --- instance segmentation ---------------------------------------------------------------------

# Every IoU threshold an instance score needs: the 0.1..0.9 table and the mean AP's 0.5..0.95.
MATCH_THRESHOLDS = tuple(sorted(set(INSTANCE_THRESHOLDS) | set(AP_THRESHOLDS)))
_COUNT_KEYS = ("tp", "fp", "fn", "n_true", "n_pred")


def match_instances(true_labels, pred_labels, thresholds=MATCH_THRESHOLDS, pairs_at: float = 0.5) -> dict:
    """Match one pair of label images (2D or 3D) at every IoU threshold in one pass (stardist.matching).

    Returns `counts` {threshold: tp, fp, fn, n_true, n_pred, sum_matched_score}, `pairs` (true id,
    predicted id) matched at IoU >= `pairs_at` (for error maps and figures) and `both_empty`.
    The overlap table of two large stacks is built once here, and any number of matches are pooled
    by `pool_instances` without touching the images again."""
    from stardist.matching import matching

    true, pred = np.asarray(true_labels), np.asarray(pred_labels)
    if true.shape != pred.shape:
        raise ValueError(f"prediction {pred.shape} and target {true.shape} differ in shape")
    thresholds = sorted({round(float(t), 2) for t in thresholds} | {round(float(pairs_at), 2)})
    stats = matching(true, pred, thresh=thresholds, report_matches=True)
    counts, pairs = {}, ()
    for t, s in zip(thresholds, stats):
        ok = [s.matched_pairs[i] for i in s.matched_tps]  # matched_tps: the pairs whose IoU reaches t
        counts[t] = {**{k: int(getattr(s, k)) for k in _COUNT_KEYS},
                     "sum_matched_score": float(sum(float(s.matched_scores[i]) for i in s.matched_tps))}
        if t == round(float(pairs_at), 2):
            pairs = tuple((int(a), int(b)) for a, b in ok)
    return {"counts": counts, "pairs": pairs, "both_empty": bool(true.max(initial=0) == 0 and pred.max(initial=0) == 0)}


def _instance_scores(c: Mapping, both_empty: bool) -> dict:
    """stardist.matching's definitions from pooled counts (ratios are 0 without a true positive)."""
    tp, fp, fn, n_true = c["tp"], c["fp"], c["fn"], c["n_true"]
    total = c["sum_matched_score"]
    out = {"tp": tp, "fp": fp, "fn": fn,
           "precision": tp / (tp + fp) if tp else 0.0, "recall": tp / (tp + fn) if tp else 0.0,
           "accuracy": tp / (tp + fp + fn) if tp else 0.0, "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
           "mean_true_score": total / n_true if n_true else 0.0, "mean_matched_score": total / tp if tp else 0.0,
           "panoptic_quality": total / (tp + fp / 2 + fn / 2) if tp else 0.0,
           "n_true": n_true, "n_pred": c["n_pred"]}
    if both_empty:  # nothing to find and nothing found: perfect agreement
        out.update({k: 1.0 for k in ("precision", "recall", "accuracy", "f1", "mean_true_score",
                                     "mean_matched_score", "panoptic_quality")})
    return {k: out[k] for k in INSTANCE_KEYS}


def pool_instances(matches) -> dict:
    """Instance metrics with object counts pooled over images (micro average, as stardist's
    matching_dataset): `at_0.5`, `per_threshold` (rows for IoU 0.1..0.9) and `mean_ap` (tp / (tp + fp + fn)
    averaged over IoU 0.5:0.05:0.95, the DSB 2018 definition). `matches`: from `match_instances`."""
    matches = list(matches)
    both_empty = all(m["both_empty"] for m in matches)
    by_t = {}
    for t in MATCH_THRESHOLDS:
        pooled = {k: sum(m["counts"][t][k] for m in matches) for k in (*_COUNT_KEYS, "sum_matched_score")}
        by_t[t] = _instance_scores(pooled, both_empty)
    return {
        "at_0.5": by_t[0.5],
        "per_threshold": [{"iou_threshold": t, **by_t[t]} for t in INSTANCE_THRESHOLDS],
        "mean_ap": float(np.mean([by_t[t]["accuracy"] for t in AP_THRESHOLDS])),
    }


def instance_metrics_many(true_labels, pred_labels) -> dict:
    """Instance metrics with object counts pooled over images (see `pool_instances`).

    Label images may be 2D or 3D (objects matched by voxel IoU); one pair's shapes must agree."""
    trues, preds = list(true_labels), list(pred_labels)
    if len(trues) != len(preds):
        raise ValueError(f"{len(trues)} true label images but {len(preds)} predictions")
    return pool_instances(match_instances(t, p) for t, p in zip(trues, preds))


def instance_metrics(true_labels, pred_labels) -> dict:
    """Instance metrics of one label image pair (see `instance_metrics_many`)."""
    return instance_metrics_many([true_labels], [pred_labels])


# --- object detection (boxes) ------------------------------------------------------------------

BOX_FIELDS = ("image", "class", "confidence", "xmin", "ymin", "xmax", "ymax")


def as_box_records(boxes) -> list[dict]:
    """Boxes as a list of dicts with image, class, confidence, xmin, ymin, xmax, ymax.

    Accepts a list of dicts, a dict of columns, a pandas DataFrame, or an (N, 4) array
    (xmin, ymin, xmax, ymax; one image, one class, confidence 1). Missing `image` means one
    image, missing `class` one class, missing `confidence` 1.0 (ground truth needs none).
    """
    if boxes is None:
        return []
    if hasattr(boxes, "to_dict") and hasattr(boxes, "columns"):
        boxes = boxes.to_dict("records")
    elif isinstance(boxes, Mapping):
        n = len(next(iter(boxes.values()))) if boxes else 0
        boxes = [{k: v[i] for k, v in boxes.items()} for i in range(n)]
    elif isinstance(boxes, np.ndarray):
        boxes = [dict(zip(("xmin", "ymin", "xmax", "ymax"), row)) for row in boxes.reshape(-1, 4)]
    out = []
    for b in boxes:
        out.append({"image": str(b.get("image", "")), "class": str(b.get("class", "object")),
                    "confidence": float(b.get("confidence", 1.0)),
                    **{k: float(b[k]) for k in ("xmin", "ymin", "xmax", "ymax")}})
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (N, 4) and (M, 4) boxes in continuous coordinates (area = width * height)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _match_boxes(truth: list[dict], preds: list[dict], iou_threshold: float):
    """Greedy matching in descending confidence: (is_tp per sorted prediction, sorted preds, matched truth)."""
    order = sorted(range(len(preds)), key=lambda i: -preds[i]["confidence"])
    preds = [preds[i] for i in order]
    coords = ("xmin", "ymin", "xmax", "ymax")
    by_image: dict[str, list[int]] = {}
    for j, t in enumerate(truth):
        by_image.setdefault(t["image"], []).append(j)
    t_arr = np.array([[t[c] for c in coords] for t in truth]).reshape(-1, 4)
    used = np.zeros(len(truth), dtype=bool)
    is_tp = np.zeros(len(preds), dtype=bool)
    for i, p in enumerate(preds):
        cand = [j for j in by_image.get(p["image"], []) if not used[j]]
        if not cand:
            continue
        ious = box_iou(np.array([[p[c] for c in coords]]), t_arr[cand])[0]
        k = int(np.argmax(ious))
        if ious[k] >= iou_threshold:
            used[cand[k]] = True
            is_tp[i] = True
    return is_tp, preds, used


def average_precision(is_tp: np.ndarray, n_true: int) -> float:
    """Area under the all-point interpolated precision-recall curve (VOC 2010+)."""
    if n_true == 0:
        return float("nan")
    if len(is_tp) == 0:
        return 0.0
    tp = np.cumsum(is_tp)
    fp = np.cumsum(~is_tp)
    recall = tp / n_true
    precision = tp / (tp + fp)
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    idx = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


def detection_metrics(true_boxes, pred_boxes, iou_threshold: float = 0.5, min_confidence: float = 0.0) -> dict:
    """Per-class precision, recall, F1 (at `iou_threshold`, predictions >= `min_confidence`),
    AP@0.5 and AP@0.5:0.95, plus their means over classes that have ground truth.

    Boxes: see `as_box_records`. A class without ground truth has AP NaN and is left out of means.
    """
    truth = as_box_records(true_boxes)
    preds = as_box_records(pred_boxes)
    classes = sorted({b["class"] for b in truth} | {b["class"] for b in preds})
    per_class = {}
    for cls in classes:
        t = [b for b in truth if b["class"] == cls]
        p = [b for b in preds if b["class"] == cls]
        aps = {}
        for thr in AP_THRESHOLDS:
            is_tp, _, _ = _match_boxes(t, p, thr)
            aps[thr] = average_precision(is_tp, len(t))
        kept = [b for b in p if b["confidence"] >= min_confidence]
        is_tp, _, _ = _match_boxes(t, kept, iou_threshold)
        ntp = int(is_tp.sum())
        c = metrics_from_counts(ntp, len(kept) - ntp, len(t) - ntp)
        f1 = c["dice"]  # F1 on objects is Dice on counts
        per_class[cls] = {"tp": ntp, "fp": len(kept) - ntp, "fn": len(t) - ntp, "n_true": len(t),
                          "n_pred": len(kept), "precision": c["precision"], "recall": c["recall"], "f1": f1,
                          "ap50": aps[0.5], "ap50_95": float(np.mean(list(aps.values())))}
    with_truth = [v for v in per_class.values() if v["n_true"] > 0]
    tp = sum(v["tp"] for v in per_class.values())
    fp = sum(v["fp"] for v in per_class.values())
    fn = sum(v["fn"] for v in per_class.values())
    pooled = metrics_from_counts(tp, fp, fn)
    return {
        "per_class": per_class,
        "precision": pooled["precision"], "recall": pooled["recall"], "f1": pooled["dice"],
        "tp": tp, "fp": fp, "fn": fn,
        "map50": float(np.mean([v["ap50"] for v in with_truth])) if with_truth else float("nan"),
        "map50_95": float(np.mean([v["ap50_95"] for v in with_truth])) if with_truth else float("nan"),
    }


# --- point localisation ------------------------------------------------------------------------

def match_points(true_points, pred_points, tolerance: float) -> list[tuple[int, int, float]]:
    """One-to-one pairs (i_true, i_pred, distance) within `tolerance`: most pairs, then least distance."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    t = np.asarray(true_points, dtype=np.float64)
    p = np.asarray(pred_points, dtype=np.float64)
    if len(t) == 0 or len(p) == 0:
        return []
    d = cdist(t.reshape(len(t), -1), p.reshape(len(p), -1))
    allowed = d <= tolerance
    if not allowed.any():
        return []
    big = tolerance * (min(d.shape) + 1) + 1.0  # any forbidden pair costs more than all allowed ones
    rows, cols = linear_sum_assignment(np.where(allowed, d, big))
    return [(int(i), int(j), float(d[i, j])) for i, j in zip(rows, cols) if allowed[i, j]]


def _points(points) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(len(points), -1) if len(points) else np.zeros((0, 2))


def localisation_metrics(true_points, pred_points, tolerance: float, true_frames=None, pred_frames=None) -> dict:
    """Precision, recall, F1, Jaccard (tp / (tp + fp + fn)) and RMSE of matched pairs at `tolerance`.

    Points are (N, D) coordinate arrays in one unit (pixels or nm; RMSE is in that unit).
    With `true_frames`/`pred_frames` (one frame number per point) only points of the same frame
    are matched. RMSE is NaN when nothing matched; empty/empty gives ratios of 1.0.
    """
    t, p = _points(true_points), _points(pred_points)
    tf = np.zeros(len(t), dtype=np.int64) if true_frames is None else np.asarray(true_frames)
    pf = np.zeros(len(p), dtype=np.int64) if pred_frames is None else np.asarray(pred_frames)
    dists = []
    for frame in np.union1d(tf, pf):
        dists += [d for _, _, d in match_points(t[tf == frame], p[pf == frame], tolerance)]
    tp = len(dists)
    fp, fn = len(p) - tp, len(t) - tp
    c = metrics_from_counts(tp, fp, fn)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": c["precision"], "recall": c["recall"], "f1": c["dice"],
            "jaccard": c["iou"], "rmse": float(np.sqrt(np.mean(np.square(dists)))) if dists else float("nan"),
            "tolerance": float(tolerance)}
