"""Error maps that show where a model fails: values for Fiji (TIFF), colours for people (PNG, plots.py)."""

from __future__ import annotations

import numpy as np

# Codes of the TP/FP/FN maps (uint8 TIFF): a user can threshold them in Fiji.
TN, TP, FP, FN = 0, 1, 2, 3
ERROR_COLOURS = {TP: (0.2, 0.8, 0.2), FP: (0.95, 0.1, 0.85), FN: (0.1, 0.75, 1.0)}  # green, magenta, cyan


def rse_map(prediction, target) -> np.ndarray:
    """Root-squared error |prediction - target| per pixel, in the target's units (float32)."""
    return np.abs(np.asarray(prediction, np.float64) - np.asarray(target, np.float64)).astype(np.float32)


def ssim_map(prediction, target, data_range: float) -> np.ndarray:
    """Local SSIM (7x7 window, scikit-image) per pixel (float32); the image's SSIM is its mean
    without the 3-pixel border, as scikit-image computes it."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(np.asarray(target, np.float64), np.asarray(prediction, np.float64),
                                    data_range=data_range, full=True)
    return full.astype(np.float32)


def error_codes(pred_mask, true_mask) -> np.ndarray:
    """Pixel map: 0 true negative, 1 TP, 2 FP, 3 FN (uint8)."""
    pred = np.asarray(pred_mask, bool)
    true = np.asarray(true_mask, bool)
    out = np.zeros(pred.shape, np.uint8)
    out[pred & true] = TP
    out[pred & ~true] = FP
    out[~pred & true] = FN
    return out


def instance_error_codes(true_labels, pred_labels, iou_threshold: float = 0.5) -> np.ndarray:
    """Object map: matched predicted objects TP, unmatched predicted FP, unmatched true objects FN."""
    from stardist.matching import matching

    true = np.asarray(true_labels)
    pred = np.asarray(pred_labels)
    m = matching(true, pred, thresh=iou_threshold, report_matches=True)
    tps = [m.matched_pairs[i] for i in m.matched_tps]  # matched_tps: indices of the pairs above the threshold
    matched_true, matched_pred = {int(t) for t, _ in tps}, {int(p) for _, p in tps}
    out = np.zeros(true.shape, np.uint8)
    fn = (true > 0) & ~np.isin(true, list(matched_true))
    out[fn] = FN
    out[(pred > 0) & np.isin(pred, list(matched_pred))] = TP
    out[(pred > 0) & ~np.isin(pred, list(matched_pred))] = FP
    return out


def overlay(image, codes) -> np.ndarray:
    """RGB float image: the grey input (percentile-stretched) with TP/FP/FN coloured over it."""
    from .baselines import gray

    g = gray(image)
    lo, hi = np.percentile(g, (1, 99.8)) if g.size else (0, 1)
    g = np.clip((g - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgb = np.repeat(g[..., None], 3, axis=-1)
    for code, colour in ERROR_COLOURS.items():
        sel = codes == code
        rgb[sel] = 0.45 * rgb[sel] + 0.55 * np.asarray(colour)
    return rgb
