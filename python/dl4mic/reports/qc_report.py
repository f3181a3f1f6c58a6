"""MODEL/qc/report.pdf: the page a user puts in the lab notebook. Built only from qc/summary.json,
qc/metrics.csv, the QC figures and model.yaml, so it can be rebuilt without predicting again."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import UserError
from ..qc.metrics import LOWER_IS_BETTER, METRIC_HELP
from . import sections
from .pdf import fmt, now, report

CURVES = (
    ("threshold_sweep.png", "Pixel scores against the probability threshold, pooled over the test images."),
    ("instance_thresholds.png", "Object scores against the IoU required for a match."),
    ("loss_curves.png", "Training (blue) and validation (orange) loss from training/log.csv."),
    ("loss_curves_log.png", "The same curves on a log scale, where late improvements show."),
)
PAGE_ROWS_HINT = "One row per test image; the model's scores first, then each baseline's."


def _verdict(summary: dict) -> str:
    """One sentence: does the model beat the best baseline on the main metric?"""
    main = summary.get("main_metric")
    scores = summary.get("metrics", {})
    model = scores.get("model", {}).get(main)
    base = {b: v.get(main) for b, v in scores.items() if b != "model" and v.get(main) is not None}
    if model is None or not base:
        return ""
    lower = main in LOWER_IS_BETTER
    best_b = (min if lower else max)(base, key=base.get)
    better = model < base[best_b] if lower else model > base[best_b]
    diff = model - base[best_b]
    return (f"On the mean {main.upper()}, the model scores {fmt(model)} against {fmt(base[best_b])} for the best "
            f"baseline ({best_b}), a difference of {diff:+.3g}: deep learning "
            f"{'helps' if better else 'does NOT help'} on these test images.")


MAX_COLUMNS = 12  # per-image table columns that stay legible on a page


def _per_image_columns(header: list[str], main_metric: str | None) -> list[int]:
    """Indices of the per-image columns to print: all when they fit, else the image, the model's main
    metric, mean AP, precision and recall, and each baseline's main metric and mean AP."""
    if len(header) <= MAX_COLUMNS:
        return list(range(len(header)))
    main = main_metric or "f1"
    wanted = {f"model_{k}" for k in (main, "mean_ap", "precision", "recall")}
    keep = [0] + [i for i, h in enumerate(header) if h in wanted]
    keep += [i for i, h in enumerate(header) if i not in keep and not h.startswith("model_")
             and (h.endswith(f"_{main}") or h.endswith("_mean_ap"))]
    return sorted(keep)[:MAX_COLUMNS]


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return (rows[0], rows[1:]) if rows else ([], [])


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def write_qc_report(model_dir, qc_dir=None) -> Path:
    """Write `qc_dir/report.pdf` (default MODEL/qc) from the QC files already there."""
    model_dir = Path(model_dir)
    qc = Path(qc_dir) if qc_dir else model_dir / "qc"
    if not (qc / "summary.json").is_file():
        raise UserError(f"{qc} has no summary.json; run `dl4mic qc {model_dir} --source DIR --target DIR` first.")
    summary = json.loads((qc / "summary.json").read_text(encoding="utf-8"))
    try:
        config = sections.read_config(model_dir)
    except UserError:
        config = {}
    spec = sections.spec_of(config) if config else None
    name = summary["model"].get("name") or model_dir.name
    title = summary["model"].get("title") or summary["model"].get("network") or ""
    metrics = summary.get("metrics", {})
    path = qc / "report.pdf"
    with report(path, f"dl4mic quality control \u2014 {name}",
                f"dl4mic {summary.get('dl4mic_version', '')} \u00b7 {model_dir} \u00b7 QC of {summary.get('date')}"
                ) as rep:
        rep.title_block(f"Quality control: {name}", f"{title} ({summary['model'].get('network')}), "
                                                    f"task: {summary.get('task')}")
        test = summary.get("test_data", {})
        rep.key_values([
            ("date", summary.get("date")), ("model folder", str(model_dir)),
            ("test images", test.get("source")), ("ground truth", test.get("target")),
            ("number of test images", test.get("n_images")),
            *([("data range (PSNR, SSIM)", f"{fmt(summary['data_range'])} ({summary.get('data_range_rule')})")]
              if "data_range" in summary else []),
        ])
        rep.heading("Scores: model and baselines (means over the test images)")
        cols = list(metrics)
        keys = list(dict.fromkeys(k for v in metrics.values() for k in v))
        rep.table(["metric"] + cols + ["meaning"],
                  [[k] + [metrics[c].get(k) for c in cols] + [METRIC_HELP.get(k, "")] for k in keys],
                  [0.14] + [0.12] * len(cols) + [0.86 - 0.12 * len(cols)], size=8, bold_first=True)
        verdict = _verdict(summary)
        if verdict:
            rep.paragraph(verdict, size=10, color="#1f3a5f")
        rep.paragraph("Baselines: " + "; ".join(f"{k}: {v}" for k, v in summary.get("baselines", {}).items())
                      + ". Baselines are tuned on these test images, so they are generous.", size=8.5)
        if "qc_threshold" in summary:  # a probability threshold was swept
            at = summary.get("at_qc_threshold", {})
            rep.paragraph(
                f"The model's mask uses the probability threshold {fmt(summary.get('model_threshold'))} chosen on "
                f"the validation images. On these test images the best threshold for IoU is "
                f"{fmt(summary.get('qc_threshold'))} (IoU {fmt(at.get('iou'))}, Dice {fmt(at.get('dice'))}, pooled "
                f"over pixels); it is stored in model.yaml as qc_threshold.", size=8.5)
        if "pooled" in summary:  # objects were matched one to one
            pooled = summary.get("pooled", {})
            others = "; ".join(f"{k[len('pooled_'):]}: F1 {fmt(v.get('at_0.5', {}).get('f1'))}, mean AP "
                               f"{fmt(v.get('mean_ap'))}" for k, v in summary.items()
                               if k.startswith("pooled_") and isinstance(v, dict) and "at_0.5" in v)
            rep.paragraph(f"Pooled over all test objects: F1 {fmt(pooled.get('at_0.5', {}).get('f1'))} at IoU 0.5, "
                          f"mean AP {fmt(pooled.get('mean_ap'))} over IoU 0.5:0.05:0.95"
                          + (f" (baselines {others})." if others else ".")
                          + (f" Thresholds (prob / NMS): {sections.stardist_thresholds(config)}."
                             if "prob_thresh" in config else ""), size=8.5)
        if (qc / "example.png").is_file():
            rep.heading("Example (the test image with the median score)"
                        + ("; stacks: the middle Z plane and a projection along Z" if summary.get("volumes") else ""))
            rep.figure(qc / "example.png", max_h=0.3,
                       caption="Error maps are saved for every test image in qc/maps/ as TIFF (values, open them in "
                               "Fiji) and PNG; predictions in qc/predictions/.")
        header, rows = _read_rows(qc / "metrics.csv")
        if rows:
            rep.new_page()
            rep.heading("Per-image scores")
            rep.paragraph(PAGE_ROWS_HINT, size=8.5)
            keep = _per_image_columns(header, summary.get("main_metric"))
            if len(keep) < len(header):
                rep.paragraph(f"{len(keep) - 1} of the {len(header) - 1} columns; qc/metrics.csv has them all.", size=8.5)
            header, rows = [header[i] for i in keep], [[r[i] for i in keep] for r in rows]
            n = len(header)
            rep.table([h.replace("_", " ") for h in header], [[_number(c) for c in r] for r in rows],
                      [0.2] + [0.8 / (n - 1)] * (n - 1), size=7 if n > 8 else 8, bold_first=True)
        figures = [(f, cap) for f, cap in CURVES if (qc / f).is_file()]
        if figures:
            rep.new_page()
            rep.heading("Curves")
            for f, cap in figures:
                rep.figure(qc / f, max_h=0.26, caption=cap)
        rep.new_page()
        rep.heading("Model")
        training = config.get("training") or {}
        rep.key_values([("network", f"{title} ({summary['model'].get('network')})"),
                        ("trained", training.get("finished") or config.get("created")),
                        ("training time", sections.duration(training.get("seconds")) if training.get("seconds")
                         else None),
                        ("epochs done", training.get("epochs_done")), ("best epoch", training.get("best_epoch")),
                        ("best validation loss", training.get("best_val_loss"))])
        if config:
            rep.heading("Parameters", size=11)
            sections.parameters(rep, config, spec, with_help=False)
            rep.heading("Training data", size=11)
            sections.data(rep, config)
        rep.heading("Versions")
        env = config.get("environment") or {}
        trained_with = ", ".join(f"{k} {env[k]}" for k in ("python", "torch", "device") if k in env) or None
        sections.environment(rep, summary.get("versions"), [("trained with", trained_with)])
        rep.heading("Citations")
        rep.paragraph("Please cite these publications when you use this model:", size=8.5)
        sections.citations(rep, summary.get("citations") or (spec.citations if spec else []))
        rep.paragraph(f"Report written {now()}.", size=7.5, color="0.4")
    return path
