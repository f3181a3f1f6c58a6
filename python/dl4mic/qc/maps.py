"""Error maps that show where a model fails: values for Fiji (TIFF), colours for people (PNG, plots.py).

Every map has the shape of its input: an image (Y, X) or a volume (Z, Y, X) of one channel."""

from __future__ import annotations

import numpy as np

# Codes of the TP/FP/FN maps (uint8 TIFF): a user can threshold them in Fiji.
TN, TP, FP, FN = 0, 1, 2, 3
ERROR_COLOURS = {TP: (0.2, 0.8, 0.2), FP: (0.95, 0.1, 0.85), FN: (0.1, 0.75, 1.0)}  # green, magenta, cyan


def rse_map(prediction, target) -> np.ndarray:
    """Root-squared error |prediction - target| per pixel (voxel), in the target's units (float32)."""
    return np.abs(np.asarray(prediction, np.float64) - np.asarray(target, np.float64)).astype(np.float32)


def ssim_map(prediction, target, data_range: float) -> np.ndarray:
    """Local SSIM per pixel (voxel) (float32), with the window of `restoration_metrics` (7x7, 7x7x7 on
    volumes, smaller on thin stacks, per-plane 2D maps on 1-2 planes: `metrics.ssim_win_size`); the image's
    SSIM is its mean without the (window // 2)-pixel border, as scikit-image computes it."""
    from .metrics import _ssim

    t, p = np.asarray(target, np.float64), np.asarray(prediction, np.float64)
    if t.shape != p.shape:
        raise ValueError(f"prediction {p.shape} and target {t.shape} differ in shape")
    _, full = _ssim(t, p, data_range, full=True)
    return np.asarray(full, np.float32)


def error_codes(pred_mask, true_mask) -> np.ndarray:
    """Pixel (voxel) map: 0 true negative, 1 TP, 2 FP, 3 FN (uint8). The codes grow with severity, so
    `codes.max(axis=0)` projects a volume's map along Z showing errors before hits."""
    pred = np.asarray(pred_mask, bool)
    true = np.asarray(true_mask, bool)
    out = np.zeros(pred.shape, np.uint8)
    out[pred & true] = TP
    out[pred & ~true] = FP
    out[~pred & true] = FN
    return out


def instance_error_codes(true_labels, pred_labels, iou_threshold: float = 0.5) -> np.ndarray:
    """Object map: matched predicted objects TP, unmatched predicted FP, unmatched true objects FN.
    2D or 3D label images (stardist.matching matches objects by pixel or voxel IoU)."""
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


def overlay(image, codes, axes: str | None = None) -> np.ndarray:
    """RGB float image: the grey input (percentile-stretched) with TP/FP/FN coloured over it.

    A volume (Z, Y, X) gives a stack of RGB planes (Z, Y, X, 3), stretched by one percentile range for
    the whole stack so planes compare. `axes` (e.g. "YXC", "ZYX") says how to read `image` when its shape
    is ambiguous (see `baselines.gray`); `codes` has the shape of the single-channel image."""
    from .baselines import gray

    g = gray(image, axes)
    if g.shape != np.shape(codes):
        raise ValueError(f"image {g.shape} (as grey) and codes {np.shape(codes)} differ in shape")
    lo, hi = np.percentile(g, (1, 99.8)) if g.size else (0, 1)
    g = np.clip((g - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgb = np.repeat(g[..., None], 3, axis=-1)
    for code, colour in ERROR_COLOURS.items():
        sel = codes == code
        rgb[sel] = 0.45 * rgb[sel] + 0.55 * np.asarray(colour)
    return rgb
