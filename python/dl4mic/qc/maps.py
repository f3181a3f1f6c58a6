"""Error maps that show where a model fails: values for Fiji (TIFF), colours for people (PNG, plots.py).

Every map has the shape of its input: an image (Y, X) or a volume (Z, Y, X) of one channel."""

from __future__ import annotations

import numpy as np

# Codes of the TP/FP/FN maps (uint8 TIFF): a user can threshold them in Fiji.
TN, TP, FP, FN = 0, 1, 2, 3
_MAX_LUT = 1 << 24  # label ids up to this go through lookup tables; sparser ones take slower paths
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


def _code_lookup(labels: np.ndarray, codes: dict[int, int], default: int = 0) -> np.ndarray:
    """`codes[label]` for every pixel (voxel) as uint8, `default` for other labels and 0 for background.
    One table lookup (no per-object masks); labels with huge sparse ids fall back to np.isin per code."""
    labels = np.asarray(labels)
    top = int(labels.max(initial=0))
    if top <= _MAX_LUT:
        lut = np.full(top + 1, default, np.uint8)
        keys = np.fromiter((k for k in codes if 0 < k <= top), np.int64)
        lut[keys] = [codes[k] for k in keys.tolist()]
        lut[0] = 0
        return lut[labels]
    out = np.where(labels > 0, np.uint8(default), np.uint8(0))
    for v in set(codes.values()):
        out[np.isin(labels, [k for k, c in codes.items() if c == v])] = v
    return out


def _ids(labels: np.ndarray) -> list[int]:
    """The object ids present (one pass without sorting or copying a large stack, via find_objects)."""
    from scipy.ndimage import find_objects

    labels = np.asarray(labels)
    if int(labels.max(initial=0)) > _MAX_LUT:
        return [int(i) for i in np.unique(labels) if i > 0]
    return [i + 1 for i, box in enumerate(find_objects(labels)) if box is not None]


def object_codes(true_labels, pred_labels, pairs) -> tuple[dict[int, int], dict[int, int]]:
    """{id: code} of the objects: true objects matched TP else FN, predicted objects matched TP else FP.
    `pairs`: (true id, predicted id) matched at the chosen IoU (`metrics.match_instances`)."""
    matched_true, matched_pred = {int(t) for t, _ in pairs}, {int(p) for _, p in pairs}
    return ({i: TP if i in matched_true else FN for i in _ids(true_labels)},
            {i: TP if i in matched_pred else FP for i in _ids(pred_labels)})


def instance_error_codes(true_labels, pred_labels, iou_threshold: float = 0.5, pairs=None) -> np.ndarray:
    """Object map: matched predicted objects TP, unmatched predicted FP, unmatched true objects FN
    (a predicted object's code wins where it overlaps a missed true one). 2D or 3D label images
    (matched by pixel or voxel IoU). `pairs`: the matches at `iou_threshold` if already known
    (`metrics.match_instances`), so a large stack is not matched twice."""
    true = np.asarray(true_labels)
    pred = np.asarray(pred_labels)
    if true.shape != pred.shape:
        raise ValueError(f"true labels {true.shape} and predicted labels {pred.shape} differ in shape")
    if pairs is None:
        from .metrics import match_instances

        pairs = match_instances(true, pred, thresholds=(iou_threshold,), pairs_at=iou_threshold)["pairs"]
    true_codes, pred_codes = object_codes(true, pred, pairs)
    out = _code_lookup(true, {k: v for k, v in true_codes.items() if v == FN})
    np.copyto(out, _code_lookup(pred, pred_codes), where=pred > 0)
    return out


def _neighbours(padded: np.ndarray) -> tuple[np.ndarray, ...]:
    """The four 4-neighbours of every pixel of an array padded by one."""
    return padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]


def _edges(labels2d: np.ndarray) -> np.ndarray:
    """Pixels of an object that touch another label or the background (the image edge counts as
    background, so objects cut by the border get a closed outline)."""
    p = np.pad(labels2d, 1)
    c = p[1:-1, 1:-1]
    edge = np.zeros(c.shape, bool)
    for n in _neighbours(p):
        edge |= c != n
    return edge & (c > 0)


def _plane_outlines(labels2d, codes: dict[int, int], outside: bool = False) -> np.ndarray:
    """Codes on each object's border pixels, or with `outside` on the pixels just outside it (so the
    outline of a missed true object runs beside, not under, that of a prediction covering it)."""
    lab = np.asarray(labels2d)
    coded = _code_lookup(lab, codes)
    if not outside:
        return np.where(_edges(lab), coded, np.uint8(0))
    out = np.zeros(lab.shape, np.uint8)
    for n_lab, n_code in zip(_neighbours(np.pad(lab, 1)), _neighbours(np.pad(coded, 1))):
        np.maximum(out, np.where(n_lab != lab, n_code, np.uint8(0)), out=out)
    return out


def _projected_outlines(labels3d, codes: dict[int, int], outside: bool = False) -> np.ndarray:
    """Outline of every object's own projection along Z (on or, with `outside`, just outside its border),
    each worked out in its bounding box, so objects lying behind one another keep their own outline (a
    projection of the label ids would hide them)."""
    from scipy.ndimage import binary_dilation, find_objects

    lab = np.asarray(labels3d)
    out = np.zeros(lab.shape[1:], np.uint8)
    ids = [k for k in codes if k > 0]
    if not ids:
        return out
    boxes = find_objects(lab, max_label=max(ids)) if max(ids) <= _MAX_LUT else None
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    for k in ids:
        if boxes is not None:
            box = boxes[k - 1]
            if box is None:
                continue
        else:
            where = np.nonzero(lab == k)
            box = tuple(slice(int(w.min()), int(w.max()) + 1) for w in where)
        if outside:  # room for the ring around the object, inside the image
            box = (box[0], *(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box[1:], lab.shape[1:])))
        shadow = (lab[box] == k).any(axis=0)
        line = (binary_dilation(shadow, cross) & ~shadow) if outside else _edges(shadow.astype(np.uint8))
        region = out[box[1:]]
        np.maximum(region, np.where(line, np.uint8(codes[k]), np.uint8(0)), out=region)
    return out


def instance_outlines(true_labels, pred_labels, pairs) -> list[np.ndarray]:
    """2D maps of object outlines coded TP / FP (on the border of each predicted object, matched or not)
    and FN (just outside each missed true object, so a merged or shifted prediction over it stays
    visible), 0 elsewhere (uint8), one per view that `plots.views` shows: the image itself, or for a
    volume (Z, Y, X) the middle Z plane and the projection along Z. Where outlines still cross, the
    worse code shows (FN > FP > TP). `pairs`: the matches at the chosen IoU (`metrics.match_instances`)."""
    true = np.asarray(true_labels)
    pred = np.asarray(pred_labels)
    if true.shape != pred.shape:
        raise ValueError(f"true labels {true.shape} and predicted labels {pred.shape} differ in shape")
    true_codes, pred_codes = object_codes(true, pred, pairs)
    missed = {k: v for k, v in true_codes.items() if v == FN}
    if true.ndim == 2:
        return [np.maximum(_plane_outlines(pred, pred_codes), _plane_outlines(true, missed, outside=True))]
    if true.ndim != 3:
        raise ValueError(f"expected label images (Y, X) or volumes (Z, Y, X), not shape {true.shape}")
    z = true.shape[0] // 2
    middle = np.maximum(_plane_outlines(pred[z], pred_codes), _plane_outlines(true[z], missed, outside=True))
    projected = np.maximum(_projected_outlines(pred, pred_codes), _projected_outlines(true, missed, outside=True))
    return [middle, projected]


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
