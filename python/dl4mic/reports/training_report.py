"""MODEL/training/report.pdf: what was trained on what, written before epoch 1 and completed after training,
so even an interrupted run leaves a record of its parameters and data."""

from __future__ import annotations

from pathlib import Path

from ..qc import plots
from . import sections
from .pdf import fmt, now, report

LOG_ROWS = 12  # last epochs listed in the table


def write_training_report(model_dir) -> Path:
    model_dir = Path(model_dir)
    config = sections.read_config(model_dir)
    spec = sections.spec_of(config)
    training = config.get("training") or {}
    status = training.get("status", "not started")
    name = config.get("name", model_dir.name)
    title = spec.title if spec else str(config.get("network"))
    path = model_dir / "training" / "report.pdf"
    log = plots.read_log(model_dir / "training" / "log.csv")
    with report(path, f"dl4mic training report \u2014 {name}", f"dl4mic {config.get('dl4mic_version', '')} "
                f"\u00b7 {model_dir} \u00b7 written {now()}") as rep:
        rep.title_block(f"Training report: {name}", f"{title} ({config.get('network')}), task: "
                                                    f"{config.get('task', getattr(spec, 'task', ''))}")
        if spec:
            rep.paragraph(spec.summary)
        rep.heading("Training")
        rep.key_values([
            ("status", status), ("model folder", str(model_dir)), ("created", config.get("created")),
            ("started", training.get("started")), ("finished", training.get("finished")),
            ("duration", sections.duration(training.get("seconds")) if "seconds" in training else None),
            ("epochs done", training.get("epochs_done")),
            ("best epoch (lowest validation loss)", training.get("best_epoch")),
            ("best validation loss", training.get("best_val_loss")),
            *sections.network_items(config),
            *sections.geometry(config),
            *[("note", n) for n in config.get("notes") or []],
            ("dl4mic version", config.get("dl4mic_version")),
        ])
        if status == "running" and not log:
            rep.paragraph("Training has not finished when this page was written; the report is completed "
                          "with the duration, the best epoch and the loss curves when training ends.",
                          color="0.3")
        rep.heading("Parameters")
        sections.parameters(rep, config, spec)
        rep.heading("Training data")
        sections.data(rep, config)
        rep.heading("Normalisation")
        sections.normalisation(rep, config)
        rep.heading("Environment and hardware")
        sections.environment(rep, config.get("environment"))
        if log:
            rep.new_page()
            rep.heading("Loss curves")
            for log_scale in (False, True):
                rep.figure(plots.loss_curves(log, log_scale), max_h=0.3)
            rep.heading(f"Last {min(LOG_ROWS, len(log['epoch']))} epochs of training/log.csv")
            cols = [c for c in ("epoch", "loss", "val_loss", "lr", "seconds") if c in log]
            n = len(log["epoch"])
            rep.table(cols, [[fmt(int(log[c][i]) if c == "epoch" else log[c][i]) for c in cols]
                             for i in range(max(0, n - LOG_ROWS), n)], size=8)
        rep.heading("Citations")
        rep.paragraph("Please cite these publications when you use this network:", size=8.5)
        sections.citations(rep, spec.citations if spec else [])
    return path
