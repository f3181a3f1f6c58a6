"""QC figures (PNG). Built with matplotlib's object API (no pyplot), so they work headless and in threads."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..data.io import atomic_path
from .maps import ERROR_COLOURS, FN, FP, TP

DPI = 120


def save(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Atomic PNG."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(path)


def read_log(path: str | Path) -> dict[str, list[float]]:
    """Columns of training/log.csv as float lists ({} if the file is missing or empty)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cols: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            try:
                cols.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                cols.setdefault(k, []).append(math.nan)
    return cols


def loss_curves(log: dict, log_scale: bool = False, title: str = "Training and validation loss") -> Figure | None:
    """Loss and validation loss per epoch, best validation epoch marked; None without a log."""
    if not log or "epoch" not in log or "loss" not in log:
        return None
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ep = np.asarray(log["epoch"])
    ax.plot(ep, log["loss"], label="training loss", color="tab:blue")
    if "val_loss" in log and np.isfinite(log["val_loss"]).any():
        val = np.asarray(log["val_loss"])
        ax.plot(ep, val, label="validation loss", color="tab:orange")
        b = int(np.nanargmin(val))
        ax.axvline(ep[b], color="grey", ls=":", lw=1)
        ax.plot([ep[b]], [val[b]], "o", color="tab:orange", label=f"best: epoch {int(ep[b])}")
    if log_scale:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" + (" (log scale)" if log_scale else ""))
    ax.set_title(title + (" (log scale)" if log_scale else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def views(volume, projection: str = "max", rgb: bool = False) -> list[tuple[str, np.ndarray]]:
    """What a figure shows of an image: [("", image)] for 2D; for a volume (Z, Y, X) two views, the middle
    Z plane and the projection along Z ("max": brightest voxel, the usual MIP; "min": e.g. the worst SSIM),
    each with a title that says which. Shared by QC figures and reports so every page shows volumes alike.

    `rgb`: the last axis holds colour, so (Y, X, 3) is 2D and (Z, Y, X, 3) a volume (projected per channel).
    Otherwise `ndim` decides (2: YX, 3: ZYX): give one channel."""
    a = np.asarray(volume)
    nd = a.ndim - int(bool(rgb))
    if nd == 2:
        return [("", a)]
    if nd != 3:
        raise ValueError(f"expected an image or a volume (Z, Y, X){' of RGB' if rgb else ''}, not shape {a.shape}")
    if projection not in ("max", "min"):
        raise ValueError(f"projection must be 'max' or 'min', not {projection!r}")
    z = a.shape[0]
    proj = a.max(axis=0) if projection == "max" else a.min(axis=0)
    return [(f"middle Z plane {z // 2 + 1}/{z}", a[z // 2]), (f"{projection} projection along Z", proj)]


def _title(what: str, view: str) -> str:
    return f"{what}\n{view}" if view else what


def _show(ax, image, title, cmap="gray", vmin=None, vmax=None, colorbar=False):
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] not in (3, 4):  # a stack: show the middle plane
        img = img[img.shape[0] // 2]
    im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02)


def _limits(image):
    lo, hi = np.percentile(np.asarray(image, np.float64), (0.5, 99.8))
    return float(lo), float(hi if hi > lo else lo + 1)


def _grid(n_rows: int, n_cols: int, size: tuple[float, float], **margins):
    """Figure and a (rows, cols) array of axes; one row keeps the 2D figure's exact size and margins,
    two rows (volumes) double the height and leave room for two-line titles."""
    w, h = size
    if n_rows > 1:
        h = h * n_rows - 0.2
        margins = {**margins, "top": 0.9, "bottom": margins.get("bottom", 0.02) / n_rows + 0.01, "hspace": 0.3}
    fig = Figure(figsize=(w, h))  # fixed margins: constrained layout doubles the time per image
    axes = np.asarray(fig.subplots(n_rows, n_cols, gridspec_kw=margins, squeeze=False))
    return fig, axes


def restoration_figure(name, source, target, prediction, rse, ssim, scores: dict | None = None) -> Figure:
    """Input, target, prediction (target's contrast), root-squared error and SSIM maps of one image.

    A volume (Z, Y, X) gets two rows (`views`): the middle Z plane and the maximum-intensity projection
    along Z; the SSIM map's projection is the minimum (the worst SSIM along Z). Contrast is set per view."""
    rows = [views(source), views(target), views(prediction), views(rse), views(ssim, projection="min")]
    n = min(len(r) for r in rows)
    fig, axes = _grid(n, 5, (12, 3.0), left=0.01, right=0.97, top=0.84, bottom=0.02, wspace=0.3)
    for i in range(n):
        (sv, s), (tv, t), (pv, p), (rv, r), (qv, q) = (v[i] for v in rows)
        lo, hi = _limits(t)
        slo, shi = _limits(s)
        _show(axes[i, 0], s, _title("input", sv), vmin=slo, vmax=shi)
        _show(axes[i, 1], t, _title("target", tv))
        _show(axes[i, 2], p, _title("prediction", pv), vmin=lo, vmax=hi)
        _show(axes[i, 3], r, _title("root-squared error", rv), cmap="inferno", colorbar=True)
        _show(axes[i, 4], q, _title("SSIM map", qv), cmap="viridis", vmin=0, vmax=1, colorbar=True)
    text = f"{name}" + ("" if not scores else "   " + "   ".join(f"{k.upper()} {v:.3f}" for k, v in scores.items()))
    fig.suptitle(text, fontsize=10)
    return fig


def segmentation_figure(name, source, true_mask, probability, overlay_rgb, scores: dict | None = None,
                        codes=None) -> Figure:
    """Input, ground truth, probability and the TP/FP/FN overlay of one image.

    The mask's `ndim` tells a volume (Z, Y, X) from an image (the input may have a colour axis more).
    A volume gets two rows (`views`): the middle Z plane, then projections along Z: maximum of the input,
    the probability and the masks (a pixel is foreground if any plane is). Give the error `codes`
    (`maps.error_codes`) so the projected overlay shows, per pixel, the worst code along Z (FN over FP
    over TP); without them it is the per-channel maximum of `overlay_rgb`, which only roughly shows errors."""
    from matplotlib.patches import Patch

    true = np.asarray(true_mask)
    src = np.asarray(source)
    rgb_source = src.ndim == true.ndim + 1
    src_views = views(src, rgb=rgb_source)
    true_views = views(true.astype(np.uint8) if true.dtype == bool else true)
    prob_views = views(probability) if probability is not None else None
    over_views = views(overlay_rgb, rgb=True)
    if codes is not None and len(over_views) > 1:
        from .baselines import gray
        from .maps import overlay

        g = gray(src, "ZYXC" if rgb_source else "ZYX")
        over_views[1] = ("worst along Z (FN > FP > TP)",
                         overlay(g.max(axis=0), np.asarray(codes).max(axis=0)))
    n_rows = len(true_views)
    fig, axes = _grid(n_rows, 4, (12, 3.4), left=0.01, right=0.99, top=0.85, bottom=0.1, wspace=0.15)
    for i in range(n_rows):
        _show(axes[i, 0], src_views[i][1], _title("input", src_views[i][0]))
        _show(axes[i, 1], true_views[i][1], _title("ground truth", true_views[i][0]), vmin=0, vmax=1)
        if prob_views is not None:
            _show(axes[i, 2], prob_views[i][1], _title("prediction", prob_views[i][0]), cmap="magma", vmin=0,
                  vmax=1, colorbar=True)
        else:
            axes[i, 2].set_axis_off()
        _show(axes[i, 3], over_views[i][1], _title("errors", over_views[i][0]))
    handles = [Patch(color=ERROR_COLOURS[c], label=n) for c, n in ((TP, "TP"), (FP, "FP"), (FN, "FN"))]
    axes[-1, 3].legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8,
                       frameon=False)
    text = f"{name}" + ("" if not scores else "   " + "   ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    fig.suptitle(text, fontsize=10)
    return fig


def sweep_figure(rows: list[dict], chosen: float | None = None, model_threshold: float | None = None,
                 keys=("iou", "dice", "precision", "recall")) -> Figure:
    """Metrics against probability threshold (pooled over the test set)."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    t = [r["threshold"] for r in rows]
    for k in keys:
        ax.plot(t, [r[k] for r in rows], marker=".", label=k)
    if chosen is not None:
        ax.axvline(chosen, color="black", ls="--", lw=1, label=f"best IoU: {chosen:g}")
    if model_threshold is not None:
        ax.axvline(model_threshold, color="grey", ls=":", lw=1, label=f"model threshold: {model_threshold:g}")
    ax.set_xlabel("probability threshold")
    ax.set_ylabel("score (pooled over test images)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Threshold sweep")
    return fig


def instance_figure(rows: list[dict], baseline_rows=None, mean_ap: dict | None = None) -> Figure:
    """Instance scores against the IoU needed for a match, pooled over the test images.

    Left: the model's precision, recall, accuracy, F1 and panoptic quality. Right: F1 of the model beside
    each baseline (`baseline_rows`: {name: rows}, or one list of rows for the Otsu baseline), so one
    sees at which IoU the model stops beating the simple methods. `mean_ap`: {name: value} for the legend."""
    if baseline_rows is None:
        baseline_rows = {}
    elif not isinstance(baseline_rows, dict):
        baseline_rows = {"otsu": baseline_rows}
    mean_ap = mean_ap or {}
    fig = Figure(figsize=(11, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    t = [r["iou_threshold"] for r in rows]
    for k in ("precision", "recall", "accuracy", "f1", "panoptic_quality"):
        left.plot(t, [r[k] for r in rows], marker=".", label=k.replace("_", " "))
    left.set_title("Model: object matching over IoU thresholds", fontsize=10)
    styles = ("--", ":", "-.")
    for i, (name, r) in enumerate((("model", rows), *baseline_rows.items())):
        label = name + (f" (mean AP {mean_ap[name]:.3f})" if mean_ap.get(name) is not None else "")
        right.plot([x["iou_threshold"] for x in r], [x["f1"] for x in r], marker=".",
                   ls="-" if i == 0 else styles[(i - 1) % len(styles)], color=None if i == 0 else f"C{i + 4}",
                   label=label)
    right.set_title("F1: model and baselines", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("IoU threshold for a match")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0.05, 0.95)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    left.set_ylabel("score (pooled over test images)")
    return fig


def grey_views(image, axes: str | None = None) -> list[tuple[str, np.ndarray]]:
    """`views` of an image or volume as one grey channel (channels averaged per view, as
    `baselines.gray`), without a float copy of the whole stack. `axes`: e.g. "YX", "CYX", "ZYX", "CZYX"."""
    from .baselines import gray

    a = np.asarray(image)
    ax = (axes or "").upper().replace("S", "C")
    if "C" not in ax:
        return views(a)
    if len(ax) != a.ndim:
        raise ValueError(f"axes {axes!r} do not fit an array of shape {a.shape}")
    return [(title, gray(v, "YXC")) for title, v in views(np.moveaxis(a, ax.index("C"), -1), rgb=True)]


def label_colours(labels2d) -> np.ndarray:
    """RGB of a label image: a fixed colour per id (golden-ratio hues, so neighbours differ), black background."""
    from matplotlib.colors import hsv_to_rgb

    ids = np.asarray(labels2d).astype(np.int64)
    hsv = np.stack([(ids * 0.6180339887) % 1.0, 0.55 + 0.4 * ((ids * 0.3819660113) % 1.0),
                    np.full(ids.shape, 0.95)], axis=-1)
    rgb = hsv_to_rgb(hsv)
    rgb[ids == 0] = 0.0
    return rgb


def outline_overlay(grey2d, outlines2d, width: int = 1) -> np.ndarray:
    """RGB: the grey view (percentile-stretched) with the TP / FP / FN outline codes drawn in full colour,
    thickened to `width` pixels so they survive the figure's down-sampling of large images."""
    from scipy.ndimage import maximum_filter

    g = np.asarray(grey2d, np.float64)
    lo, hi = _limits(g) if g.size else (0.0, 1.0)
    rgb = np.repeat(np.clip((g - lo) / (hi - lo), 0, 1)[..., None], 3, axis=-1)
    codes = np.asarray(outlines2d)
    if width > 1:
        codes = maximum_filter(codes, size=width)  # the worse code wins where outlines meet
    for code, colour in ERROR_COLOURS.items():
        rgb[codes == code] = colour
    return rgb


def instance_errors_figure(name, source, true_labels, pred_labels, outlines, scores: dict | None = None,
                           axes: str | None = None, iou_threshold: float = 0.5) -> Figure:
    """Input, ground truth, prediction and the errors of one image: outlines of true positives (green),
    false-positive predictions (magenta) and missed true objects (cyan) at `iou_threshold`.

    `outlines`: `maps.instance_outlines`, one per view. A volume (Z, Y, X) gets two rows (`views`): the
    middle Z plane, and projections along Z: the input's maximum, each object's own outline in the errors
    panel and the largest label id in the label panels. `axes` of `source`: see `grey_views`."""
    from matplotlib.patches import Patch

    src_views = grey_views(source, axes)
    true_views, pred_views = views(np.asarray(true_labels)), views(np.asarray(pred_labels))
    n_rows = len(true_views)
    if not (len(src_views) == len(pred_views) == len(outlines) == n_rows):
        raise ValueError("source, labels and outlines must show the same views (all 2D or all volumes)")
    fig, grid = _grid(n_rows, 4, (12, 3.4), left=0.01, right=0.99, top=0.85, bottom=0.1, wspace=0.15)
    for i in range(n_rows):
        view, grey = src_views[i]
        lo, hi = _limits(grey)
        width = max(1, int(math.ceil(max(np.shape(grey)) / 300)))  # ~300 px per panel at DPI 120
        _show(grid[i, 0], grey, _title("input", view), vmin=lo, vmax=hi)
        _show(grid[i, 1], label_colours(true_views[i][1]), _title("ground truth", true_views[i][0]))
        _show(grid[i, 2], label_colours(pred_views[i][1]), _title("prediction", pred_views[i][0]))
        _show(grid[i, 3], outline_overlay(grey, outlines[i], width),
              _title(f"errors at IoU {iou_threshold:g}", view))
    handles = [Patch(color=ERROR_COLOURS[c], label=n) for c, n in
               ((TP, "TP: matched"), (FP, "FP: false prediction"), (FN, "FN: missed object"))]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    text = f"{name}" + ("" if not scores else "   " + "   ".join(
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()))
    fig.suptitle(text, fontsize=10)
    return fig


def detection_figure(image, true_boxes: list[dict], pred_boxes: list[dict], is_tp, matched_truth) -> Figure:
    """Boxes on an image: TP green, FP magenta, missed ground truth (FN) cyan dashed."""
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.add_subplot()
    _show(ax, image, "detections")
    for b, ok in zip(pred_boxes, is_tp):
        ax.add_patch(Rectangle((b["xmin"], b["ymin"]), b["xmax"] - b["xmin"], b["ymax"] - b["ymin"], fill=False,
                               color=ERROR_COLOURS[TP if ok else FP], lw=1.5))
    for b, ok in zip(true_boxes, matched_truth):
        if not ok:
            ax.add_patch(Rectangle((b["xmin"], b["ymin"]), b["xmax"] - b["xmin"], b["ymax"] - b["ymin"],
                                   fill=False, color=ERROR_COLOURS[FN], lw=1.5, ls="--"))
    return fig
