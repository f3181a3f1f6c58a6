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


def restoration_figure(name, source, target, prediction, rse, ssim, scores: dict | None = None) -> Figure:
    """Input, target, prediction (target's contrast), root-squared error and SSIM maps of one image."""
    fig = Figure(figsize=(12, 3.0))  # fixed margins: constrained layout doubles the time per image
    axes = fig.subplots(1, 5, gridspec_kw={"left": 0.01, "right": 0.97, "top": 0.84, "bottom": 0.02, "wspace": 0.3})
    lo, hi = _limits(target)
    _show(axes[0], source, "input", vmin=_limits(source)[0], vmax=_limits(source)[1])
    _show(axes[1], target, "target")
    _show(axes[2], prediction, "prediction", vmin=lo, vmax=hi)
    _show(axes[3], rse, "root-squared error", cmap="inferno", colorbar=True)
    _show(axes[4], ssim, "SSIM map", cmap="viridis", vmin=0, vmax=1, colorbar=True)
    text = f"{name}" + ("" if not scores else "   " + "   ".join(f"{k.upper()} {v:.3f}" for k, v in scores.items()))
    fig.suptitle(text, fontsize=10)
    return fig


def segmentation_figure(name, source, true_mask, probability, overlay_rgb, scores: dict | None = None) -> Figure:
    """Input, ground truth, probability and the TP/FP/FN overlay of one image."""
    from matplotlib.patches import Patch

    fig = Figure(figsize=(12, 3.4))
    axes = fig.subplots(1, 4, gridspec_kw={"left": 0.01, "right": 0.99, "top": 0.85, "bottom": 0.1, "wspace": 0.15})
    _show(axes[0], source, "input")
    _show(axes[1], true_mask, "ground truth", vmin=0, vmax=1)
    if probability is not None:
        _show(axes[2], probability, "prediction", cmap="magma", vmin=0, vmax=1, colorbar=True)
    else:
        axes[2].set_axis_off()
    _show(axes[3], overlay_rgb, "errors")
    handles = [Patch(color=ERROR_COLOURS[c], label=n) for c, n in ((TP, "TP"), (FP, "FP"), (FN, "FN"))]
    axes[3].legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8,
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


def instance_figure(rows: list[dict], baseline_rows: list[dict] | None = None) -> Figure:
    """Instance metrics against the IoU matching threshold."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    t = [r["iou_threshold"] for r in rows]
    for k in ("precision", "recall", "accuracy", "f1", "panoptic_quality"):
        ax.plot(t, [r[k] for r in rows], marker=".", label=k)
    if baseline_rows:
        ax.plot(t, [r["f1"] for r in baseline_rows], "k--", label="Otsu baseline f1")
    ax.set_xlabel("IoU threshold for a match")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Instance matching over IoU thresholds")
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
