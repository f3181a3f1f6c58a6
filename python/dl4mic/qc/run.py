"""`dl4mic qc`: score a model against ground truth, beside simple baselines, and write MODEL/qc/.

Everything is built in a hidden temporary folder next to the output and swapped in at the end,
so a rerun replaces the previous QC cleanly and an interrupted run leaves the old one intact.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.io import atomic_path, channels_first, staging_folder, dtype_range, read_image, read_image_with_meta, write_tiff
from ..errors import UserError
from . import baselines as bl
from . import maps, plots
from .residuals import denoising_figure, residual_statistics
from .metrics import (AP_THRESHOLDS, INSTANCE_THRESHOLDS, best_threshold, match_instances, multiclass_metrics,
                      pool_instances, restoration_metrics, segmentation_metrics, threshold_sweep_many)

MAX_FIGURES = 16  # per-image PNG figures (TIFF maps are written for every image)


def _load(model):
    """A loaded model (anything with .predict) or a model folder."""
    if hasattr(model, "predict"):
        return model
    from ..predict.model import load_model

    return load_model(Path(model))


def _finite(x):
    """JSON-safe values: NaN and infinities become null (JSON has no such numbers)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _means(rows: list[dict], prefix: str) -> dict:
    """Mean of each `prefix`+metric column over images (NaN ignored; infinite PSNR kept as inf)."""
    out = {}
    for k in rows[0]:
        if k.startswith(prefix):
            vals = np.array([r[k] for r in rows if r.get(k) is not None], dtype=np.float64)
            out[k[len(prefix):]] = float(np.nanmean(vals)) if (~np.isnan(vals)).any() else float("nan")
    return out


def _check_shape(name: Path, a: np.ndarray, b: np.ndarray, what: str):
    if a.shape != b.shape:
        raise UserError(f"{name} has shape {a.shape} but its {what} has shape {b.shape}; "
                        f"give test images and targets of the same size.")


def _versions() -> dict:
    import platform

    import scipy
    import skimage

    from .. import __version__

    out = {"dl4mic": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "scipy": scipy.__version__, "scikit-image": skimage.__version__}
    try:
        import stardist

        out["stardist"] = stardist.__version__
    except Exception:  # optional for restoration-only installs
        pass
    return out


def _stem(path: Path) -> str:
    return path.stem


def _read(m, path: Path) -> tuple[np.ndarray, str, tuple | None]:
    """A test image channels-first, its axes in that order, and its voxel size: the file's own axes where
    its metadata records them, else those the model was trained on (or the stated rule)."""
    arr, meta = read_image_with_meta(path)
    ax = m.image_axes(arr) if meta.origin == "rule" and hasattr(m, "image_axes") else meta.axes
    image = channels_first(arr, ax)
    return image, ("C" + ax.replace("C", "")) if "C" in ax else ax, meta.spacing


def _planes(image: np.ndarray, axes: str) -> list[np.ndarray]:
    """What QC scores one by one: the image (2D or a whole volume), or each channel of a multichannel one."""
    return list(image) if axes.startswith("C") else [image]


def _restored_planes(m, s_path: Path, t_path: Path | None):
    """Predict one test image and yield (row keys, file stem, source, target or None, prediction) per channel:
    multichannel images are scored channel by channel (rows carry `channel`, files end in _c1, _c2, ...)."""
    source, axes, _ = _read(m, s_path)
    target = _read(m, t_path)[0] if t_path is not None else None
    pred = np.asarray(m.predict(source, axes=axes)["restored"], dtype=np.float32)
    _check_shape(s_path, pred, target if target is not None else source, "target" if target is not None else "input")
    if not axes.startswith("C"):
        yield {"image": s_path.name}, _stem(s_path), source, target, pred
        return
    for c in range(pred.shape[0]):
        yield ({"image": s_path.name, "channel": c + 1}, f"{_stem(s_path)}_c{c + 1}", source[c],
               target[c] if target is not None else None, pred[c])


def _qc_restoration(m, pairs, out: Path, progress) -> dict:
    first_t = read_image(pairs[0][1])
    data_range = dtype_range(first_t.dtype)
    rule = f"{first_t.dtype} full range"
    if data_range is None:
        lo, hi = np.inf, -np.inf
        for _, t in pairs:
            arr = read_image(t)
            lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
        data_range = hi - lo if hi > lo else 1.0
        rule = "float targets: max - min over the test targets"
    first = [_read(m, s) for s, _ in pairs[:bl.SIGMA_PAIRS]]
    sources = [p for image, axes, _ in first for p in _planes(image, axes)]
    targets = [p for (_, axes, _), (_, t) in zip(first, pairs) for p in _planes(_read(m, t)[0], axes)]
    comparable = all(s.shape == t.shape for s, t in zip(sources, targets))
    # Baselines are fitted to the target's units only when the model itself maps to other units.
    fit = ((getattr(m, "config", None) or {}).get("normalization", {}).get("target") or {}).get("method") == "fixed"
    volume = "Z" in first[0][1]
    spacing = first[0][2] or (getattr(m, "config", None) or {}).get("spacing") if volume else None
    sigma, sigma_scores = bl.choose_sigma(sources, targets, data_range, fit=fit, spacing=spacing) \
        if comparable else (None, {})
    del sources, targets

    rows = []
    for i, (s_path, t_path) in enumerate(pairs):
        if read_image(t_path).dtype != first_t.dtype:
            raise UserError(f"{t_path} is {read_image(t_path).dtype} but {pairs[0][1]} is {first_t.dtype}; "
                            f"give test targets of one bit depth so their scores are comparable.")
        for keys, name, source, target, pred in _restored_planes(m, s_path, t_path):
            row = dict(keys)
            row.update({f"model_{k}": v for k, v in restoration_metrics(pred, target, data_range).items()})
            for bname, bimg in (bl.restoration_baselines(source, target, sigma, fit) if sigma is not None
                                else {}).items():
                row.update({f"{bname}_{k}": v for k, v in restoration_metrics(bimg, target, data_range).items()})
            rows.append(row)
            rse, ssim = maps.rse_map(pred, target), maps.ssim_map(pred, target, data_range)
            write_tiff(out / "predictions" / f"{name}.tif", pred)
            write_tiff(out / "maps" / f"{name}_rse.tif", rse)
            write_tiff(out / "maps" / f"{name}_ssim.tif", ssim)
            if len(rows) <= MAX_FIGURES:
                scores = {k: row[f"model_{k}"] for k in ("ssim", "psnr", "nrmse")}
                plots.save(plots.restoration_figure(name, source, target, pred, rse, ssim, scores),
                           out / "maps" / f"{name}.png")
        if progress:
            progress(i + 1, len(pairs), s_path.name)
    return {"rows": rows, "data_range": data_range, "data_range_rule": rule,
            "baselines": {"input": "raw input" + (", affine-fitted to the target" if fit else ""),
                          "gaussian": f"Gaussian filter (sigma {sigma})" + (", affine-fitted to the target" if fit else "")}
            if sigma is not None else {},
            "extras": {"gaussian_sigma": sigma, "gaussian_ssim_by_sigma": sigma_scores},
            "main_metric": "ssim"}


# --- restoration without ground truth (e.g. Noise2Void on the images it denoises) -------------------------


def _qc_restoration_no_gt(m, pairs, out: Path, progress) -> dict:
    rows = []
    for i, (s_path, _) in enumerate(pairs):
        for keys, name, source, _, pred in _restored_planes(m, s_path, None):
            stats = residual_statistics(source, pred)
            rows.append({**keys, **{f"model_{k}": v for k, v in stats.items()}})
            write_tiff(out / "predictions" / f"{name}.tif", pred)
            write_tiff(out / "maps" / f"{name}_residual.tif", (source.astype(np.float32) - pred).astype(np.float32))
            if len(rows) <= MAX_FIGURES:
                plots.save(denoising_figure(name, source, pred, stats), out / "maps" / f"{name}.png")
        if progress:
            progress(i + 1, len(pairs), s_path.name)
    return {"rows": rows, "baselines": {}, "ground_truth": False,
            "extras": {"note": "No ground truth: the model is judged by what it removed (the residual input - "
                               "prediction) and by figures; give --target clean images to get PSNR/SSIM/NRMSE."},
            "main_metric": "residual_lag1"}


def run_qc_without_ground_truth(model, source, output=None, overwrite: bool = True, progress="auto",
                                callback: Callable[[dict], bool | None] | None = None) -> dict:
    """QC of a restoration (denoising) model when no clean images exist: input vs prediction figures,
    residual maps and residual statistics per image, loss curves, summary.json and report.pdf in MODEL/qc/."""
    return run_qc(model, source, None, output=output, overwrite=overwrite, progress=progress, callback=callback)


def _true_mask(mask: np.ndarray, config: dict) -> np.ndarray:
    foreground = (config.get("parameters") or {}).get("mask_foreground", "nonzero")
    return mask != 0 if foreground == "nonzero" else mask == 0


def _qc_segmentation(m, pairs, out: Path, progress) -> dict:
    config = m.config or {}
    model_threshold = float(config.get("threshold", (config.get("parameters") or {}).get("threshold", 0.5)))
    sources, truths, probs, preds = [], [], [], []
    for i, (s_path, t_path) in enumerate(pairs):
        source, axes, _ = _read(m, s_path)
        result = m.predict(source, axes=axes)
        if "classes" in result:
            return _qc_classes(m, pairs, out, progress)
        truth = _true_mask(_read(m, t_path)[0], config)
        prob = np.asarray(result["probability"], dtype=np.float32)
        _check_shape(s_path, prob, truth, "mask")
        pred = np.asarray(result["mask"]) != 0 if "mask" in result else prob >= model_threshold
        name = _stem(s_path)
        write_tiff(out / "predictions" / f"{name}_prob.tif", prob)
        write_tiff(out / "predictions" / f"{name}_mask.tif", (pred * 255).astype(np.uint8))
        sources.append(source), truths.append(truth), probs.append(prob), preds.append(pred)
        if progress:
            progress(i + 1, len(pairs), s_path.name)
    otsu, polarity, otsu_t = bl.otsu_baseline(sources, truths, axes=axes)
    sweep = threshold_sweep_many(probs, truths)
    best = best_threshold(sweep, "iou")
    rows = []
    for i, (s_path, _) in enumerate(pairs):
        row = {"image": s_path.name}
        model_scores = segmentation_metrics(preds[i], truths[i])
        row.update({f"model_{k}": model_scores[k] for k in ("iou", "dice", "precision", "recall")})
        otsu_scores = segmentation_metrics(otsu[i], truths[i])
        row.update({f"otsu_{k}": otsu_scores[k] for k in ("iou", "dice", "precision", "recall")})
        rows.append(row)
        name = _stem(s_path)
        codes = maps.error_codes(preds[i], truths[i])
        write_tiff(out / "maps" / f"{name}_errors.tif", codes)
        if i < MAX_FIGURES:
            scores = {k: row[f"model_{k}"] for k in ("iou", "dice")}
            plots.save(plots.segmentation_figure(name, sources[i], truths[i], probs[i],
                                                 maps.overlay(sources[i], codes, axes=axes), scores, codes=codes),
                       out / "maps" / f"{name}.png")
    plots.save(plots.sweep_figure(sweep, best, model_threshold), out / "threshold_sweep.png")
    at_best = next(r for r in sweep if r["threshold"] == best)
    return {"rows": rows, "baselines": {"otsu": f"Otsu threshold per image, {polarity} foreground "
                                                  f"(the polarity with the better pooled IoU)"},
            "extras": {"model_threshold": model_threshold, "qc_threshold": best, "at_qc_threshold": at_best,
                       "threshold_sweep": sweep, "otsu_polarity": polarity, "otsu_thresholds": otsu_t},
            "main_metric": "iou"}


def _qc_classes(m, pairs, out: Path, progress) -> dict:
    """Multi-class masks (0 = background, 1..K): per-class IoU/Dice and their means; no threshold to sweep."""
    k = int((m.config.get("parameters") or {}).get("n_classes", 1))
    rows = []
    for i, (s_path, t_path) in enumerate(pairs):
        source, axes, _ = _read(m, s_path)
        truth = _read(m, t_path)[0]
        pred = np.asarray(m.predict(source, axes=axes)["classes"])
        _check_shape(s_path, pred, truth, "class mask")
        write_tiff(out / "predictions" / f"{_stem(s_path)}_classes.tif", pred.astype(np.uint8), axes)
        scores = multiclass_metrics(pred, truth, k + 1)
        rows.append({"image": s_path.name, **{f"model_{key}": v for key, v in scores.items()}})
        codes = maps.error_codes(pred > 0, truth > 0)
        if i < MAX_FIGURES:
            plots.save(plots.segmentation_figure(_stem(s_path), source, truth > 0, None,
                                                 maps.overlay(source, codes, axes=axes),
                                                 {"iou": scores["iou"], "dice": scores["dice"]}, codes=codes),
                       out / "maps" / f"{_stem(s_path)}.png")
        if progress:
            progress(i + 1, len(pairs), s_path.name)
    return {"rows": rows, "baselines": {}, "extras": {"n_classes": k}, "main_metric": "iou"}


INSTANCE_IOU = 0.5  # the IoU at which error maps and figures call an object found (the usual reporting point)
INSTANCE_ROW_KEYS = ("precision", "recall", "accuracy", "f1", "mean_matched_score", "panoptic_quality",
                     "tp", "fp", "fn")
INSTANCE_TABLE_KEYS = ("f1", "precision", "recall", "panoptic_quality", "accuracy", "mean_matched_score",
                       "tp", "fp", "fn", "n_true", "n_pred")


def _spatial_axes(axes: str, ndim: int) -> str | None:
    """The Z/Y/X letters of `axes` (a label image has no channel), None if they do not fit `ndim`."""
    spatial = "".join(a for a in axes if a in "ZYX")
    return spatial if len(spatial) == ndim else None


def _as_labels(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Integer labels (0 background, one id per object); float files holding whole numbers are accepted."""
    a = np.asarray(arr)
    if a.dtype == bool:
        return a.astype(np.uint8)
    whole = np.issubdtype(a.dtype, np.integer) or bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)))
    if not whole or (a.size and a.min() < 0):
        raise UserError(f"{path} is not a label image ({what}): instance QC needs whole numbers, 0 for the "
                        f"background and one positive id per object.")
    return a if np.issubdtype(a.dtype, np.integer) else bl.compact_labels(a.astype(np.int64))


def _voxel_size(m, spacing, ndim: int) -> tuple[float, ...] | None:
    """What the watershed baseline measures distances in: the test image's calibration, else that of the
    model's training data; None (pixels) when neither gives one size per spatial axis."""
    for sp in (spacing, (getattr(m, "config", None) or {}).get("spacing")):
        if sp is not None and len(sp) == ndim and all(np.isfinite(float(v)) and float(v) > 0 for v in sp):
            return tuple(float(v) for v in sp)
    return None


def _instance_row(prefix: str, match: dict) -> dict:
    """One method's per-image columns: scores at IoU 0.5 and mean AP."""
    res = pool_instances([match])
    return {**{f"{prefix}_{k}": res["at_0.5"][k] for k in INSTANCE_ROW_KEYS}, f"{prefix}_mean_ap": res["mean_ap"]}


def _qc_instance(m, pairs, out: Path, progress) -> dict:
    """Objects of every test image matched one to one to the truth at IoU 0.1..0.9 (and 0.5:0.05:0.95 for
    mean AP), for the model and two baselines on the same Otsu mask: connected components (`otsu`) and a
    distance-transform watershed (`watershed`). Scores per image and pooled over the test set.

    Two passes, so the test set is never held in memory at once (stacks can be hundreds of MB): first
    predict, score and draw each image, keeping only its bright Otsu mask bit-packed; then, with the
    polarity chosen over all images, build and score both baselines, reading each truth again."""
    methods = ("model", "otsu", "watershed")
    matches: dict[str, list] = {k: [] for k in methods}
    rows, masks, counts, thresholds, voxel_sizes = [], [], [], [], {}
    for i, (s_path, t_path) in enumerate(pairs):
        source, axes, spacing = _read(m, s_path)
        truth = _as_labels(_read(m, t_path)[0], t_path, "ground truth")
        pred = np.asarray(m.predict(source, axes=axes)["labels"])
        _check_shape(s_path, pred, truth, "label image")
        pred = bl.compact_labels(_as_labels(pred, s_path, "the model's prediction"))
        name = _stem(s_path)
        spatial = _spatial_axes(axes, pred.ndim)
        calibration = spacing if spatial and spacing is not None and len(spacing) == len(spatial) else None
        voxel_sizes[s_path.name] = _voxel_size(m, spacing, pred.ndim)
        write_tiff(out / "predictions" / f"{name}_labels.tif", pred, spatial, calibration)
        match = match_instances(truth, pred, pairs_at=INSTANCE_IOU)
        rows.append({"image": s_path.name, **_instance_row("model", match)})
        codes = maps.instance_error_codes(truth, pred, INSTANCE_IOU, pairs=match["pairs"])
        write_tiff(out / "maps" / f"{name}_errors.tif", codes, spatial, calibration)
        del codes
        if i < MAX_FIGURES:
            row = rows[-1]
            scores = {"F1": row["model_f1"], "mean AP": row["model_mean_ap"],
                      **{k.upper(): row[f"model_{k}"] for k in ("tp", "fp", "fn")}}
            plots.save(plots.instance_errors_figure(name, source, truth, pred,
                                                    maps.instance_outlines(truth, pred, match["pairs"]), scores,
                                                    axes=axes, iou_threshold=INSTANCE_IOU),
                       out / "maps" / f"{name}.png")
        matches["model"].append({k: match[k] for k in ("counts", "both_empty")})  # the pairs are not needed again
        bright, threshold = bl.otsu_masks(source, axes)
        counts.append(bl.polarity_counts(bright, truth > 0))
        masks.append((np.packbits(bright, axis=None), bright.shape))  # 1 bit per voxel until pass two
        thresholds.append(threshold)
        del source, truth, pred, bright
        if progress:
            progress(i + 1, len(pairs), s_path.name)

    polarity = bl.choose_polarity(counts)
    for i, (s_path, t_path) in enumerate(pairs):
        truth = _as_labels(_read(m, t_path)[0], t_path, "ground truth")
        bits, shape = masks[i]
        masks[i] = None
        mask = np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).view(bool)
        if polarity == "dark":
            np.logical_not(mask, out=mask)
        for key in ("otsu", "watershed"):
            labels = (bl.connected_components(mask) if key == "otsu"
                      else bl.distance_watershed(mask, voxel_sizes[s_path.name]))
            match = match_instances(truth, labels, pairs_at=INSTANCE_IOU)
            rows[i].update(_instance_row(key, match))
            matches[key].append({k: match[k] for k in ("counts", "both_empty")})
            del labels

    pooled = {k: pool_instances(matches[k]) for k in methods}
    table = [{"method": k, "iou_threshold": r["iou_threshold"], **{c: r[c] for c in INSTANCE_TABLE_KEYS}}
             for k in methods for r in pooled[k]["per_threshold"]]
    _write_csv(out / "instance_thresholds.csv", table)
    mean_ap = {k: pooled[k]["mean_ap"] for k in methods}
    plots.save(plots.instance_figure(pooled["model"]["per_threshold"],
                                     {k: pooled[k]["per_threshold"] for k in methods[1:]}, mean_ap),
               out / "instance_thresholds.png")
    return {"rows": rows,
            "baselines": {"otsu": f"connected components of Otsu's threshold, {polarity} foreground "
                                  f"(8-connected in 2D, 26-connected in 3D)",
                          "watershed": "watershed of the same Otsu mask's distance transform, seeded at its "
                                       "peaks (in the voxel size where the image or model records one), "
                                       "splitting touching objects"},
            "extras": {"pooled": pooled["model"], "pooled_otsu": pooled["otsu"],
                       "pooled_watershed": pooled["watershed"], "pooled_mean_ap": mean_ap,
                       "instance_thresholds": table, "iou_thresholds": list(INSTANCE_THRESHOLDS),
                       "ap_thresholds": list(AP_THRESHOLDS), "error_map_iou": INSTANCE_IOU,
                       "otsu_polarity": polarity, "otsu_thresholds": thresholds,
                       "watershed_voxel_sizes": voxel_sizes},
            "main_metric": "f1"}


# The scorer of each QC task a network can declare (`Network.qc_task`): with ground truth, and without
# it (None where a score needs ground truth).
SCORERS = {"restoration": (_qc_restoration, _qc_restoration_no_gt), "segmentation": (_qc_segmentation, None),
           "instance": (_qc_instance, None)}


def _write_csv(path: Path, rows: list[dict]):
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _swap(tmp: Path, out: Path):
    """Replace `out` by `tmp` (both folders); the old folder is removed only after the swap."""
    old = None
    if out.exists():
        old = Path(f"{tmp}-old")  # a staging name: a kill right here leaves it for the next QC to remove
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _store_qc_threshold(model_dir: Path, threshold: float):
    """Record the QC threshold in model.yaml (`threshold` itself is the training choice and stays)."""
    from ..model_folder import ModelFolder

    folder = ModelFolder(model_dir)
    if not folder.config.is_file():
        return
    config = folder.read() or {}
    config["qc_threshold"] = float(threshold)
    folder.write(config)


def _reporter(progress, callback, total: int, desc: str) -> tuple[Callable[[int, int, str], None], Callable]:
    """Adapt the training loop's progress convention (mode string + event callback) or a plain callable:
    a step per image, and a finish(event) once the QC folder is written (the "done" event)."""
    if callable(progress):
        return progress, lambda event: None
    from ..progress import Progress

    rep = Progress(progress or "none", callback)
    rep.start(total, desc, unit="image")

    def step(done: int, n: int, name: str):
        rep.update({"event": "qc_image", "done": done, "total": n, "image": name})
    return step, rep.close


def run_qc(model, source, target=None, output=None, overwrite: bool = True, progress="auto",
           callback: Callable[[dict], bool | None] | None = None) -> dict:
    """Predict the test pairs, score them and their baselines, write MODEL/qc/ and return the summary.

    `model`: a model folder or a loaded model (`.dir .config .spec .task .predict`).
    `target=None` (restoration only, e.g. Noise2Void): QC without ground truth (residual statistics, figures).
    `progress`: auto | bar | json | none (as for training; events {"event": "qc_image", ...} go to
    `callback`), or a callable `progress(done, total, file_name)` called after each image.
    """
    from ..data.pairing import pair_files
    from ..reports.qc_report import write_qc_report

    m = _load(model)
    task = m.task
    if task not in SCORERS:
        raise UserError(f"QC of {task} models is not available yet in this dl4mic version; "
                        f"score their outputs with the functions in dl4mic.qc.metrics.")
    with_truth, without_truth = SCORERS[task]
    if target is None and without_truth is None:
        raise UserError(f"QC of {task} models needs ground truth; give --target, the folder of true "
                        f"masks or labels with the same file names as the images in {source}.")
    pairs = pair_files(source, target)
    progress, finish = _reporter(progress, callback, len(pairs), f"QC {Path(m.dir).name}")
    model_dir = Path(m.dir)
    out = Path(output) if output else model_dir / "qc"
    if out.exists() and not overwrite:
        raise UserError(f"{out} already holds a QC; rerun with --overwrite to replace it.")
    tmp = staging_folder(out)
    try:
        result = (with_truth if target is not None else without_truth)(m, pairs, tmp, progress)
        rows = result.pop("rows")
        spec = getattr(m, "spec", None)
        config = m.config or {}
        main = result.pop("main_metric")
        order = sorted(range(len(rows)), key=lambda i: rows[i][f"model_{main}"])
        median_row = rows[order[len(order) // 2]]  # the median image is the honest example
        example = median_row["image"]
        summary = {
            "dl4mic_version": _versions()["dl4mic"],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "task": task,
            "model": {"name": config.get("name", model_dir.name), "network": config.get("network"),
                      "title": getattr(spec, "title", None), "dir": str(model_dir)},
            "test_data": {"source": str(Path(source).resolve()),
                          "target": str(Path(target).resolve()) if target is not None else None,
                          "n_images": len({r["image"] for r in rows}),
                          "files": list(dict.fromkeys(r["image"] for r in rows))},
            "main_metric": main,
            "means": _means(rows, "model_"),  # the model's mean scores (also under metrics.model)
            "metrics": {"model": _means(rows, "model_"),
                        **{b: _means(rows, f"{b}_") for b in result["baselines"]}},
            "baselines": result.pop("baselines"),
            **{k: v for k, v in result.items() if k != "extras"},
            **result.get("extras", {}),
            "example_image": example,
            "volumes": bool(config.get("geometry", {}).get("axes") == "ZYX"),
            "citations": [dict(c) for c in getattr(spec, "citations", ())],
            "versions": _versions(),
        }
        channel = f"_c{median_row['channel']}" if "channel" in median_row else ""
        example_png = tmp / "maps" / f"{_stem(Path(example))}{channel}.png"
        if example_png.exists():
            shutil.copyfile(example_png, tmp / "example.png")
        log = plots.read_log(model_dir / "training" / "log.csv")
        for log_scale, fname in ((False, "loss_curves.png"), (True, "loss_curves_log.png")):
            fig = plots.loss_curves(log, log_scale)
            if fig is not None:
                plots.save(fig, tmp / fname)
        _write_csv(tmp / "metrics.csv", rows)
        summary["files"] = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()) + ["report.pdf"]
        with atomic_path(tmp / "summary.json") as p, open(p, "w", encoding="utf-8") as fh:
            json.dump(_finite(summary), fh, indent=2)
        write_qc_report(model_dir, qc_dir=tmp)
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if "qc_threshold" in summary:
        _store_qc_threshold(model_dir, summary["qc_threshold"])
    summary["output"] = str(out)
    summary = _finite(summary)
    finish({"event": "done", "output": str(out), "n": summary["test_data"]["n_images"],
            "main_metric": main, "mean": summary["means"].get(main)})
    return summary
