"""Report sections shared by the training and QC reports: model.yaml and the network's spec, in words."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..data.normalize import describe as describe_normalization
from ..errors import UserError
from .pdf import Report, fmt

MAX_NAMES = 24  # file names listed before "... and N more"


def read_config(model_dir: Path) -> dict:
    from ..model_folder import read_model_config

    return read_model_config(model_dir) or {}


def network_items(config: dict) -> list[tuple[str, object]]:
    """The network's own report lines (thresholds chosen on validation, ...), or none if it is unknown."""
    from ..networks import get_network

    try:
        return get_network(str(config.get("network"))).report_items(config)
    except UserError:
        return []


def geometry(config: dict) -> list[tuple[str, object]]:
    """Axes, voxel size and the per-axis patch / tiling numbers, in words."""
    g = config.get("geometry") or {}
    spacing = config.get("spacing")
    x = "\u00d7"
    return [("image axes (files)", config.get("axes")),
            ("voxel size (\u00b5m, per axis)", f"{x.join(fmt(v) for v in spacing)} ({g.get('axes', '')})"
             if spacing else "not recorded in the files"),
            *([("network axes", g["axes"]), ("training patch", x.join(map(str, g["patch"]))),
               ("size multiple / tiling halo", f"{x.join(map(str, g['multiple']))} / {x.join(map(str, g['halo']))}")]
              if g else [])]


def spec_of(config: dict):
    """The network's spec, or None for an unknown network (e.g. an imported model)."""
    from ..specs import load_spec

    try:
        return load_spec(str(config.get("network")))
    except (UserError, OSError, KeyError):
        return None


def duration(seconds) -> str:
    if seconds is None:
        return "\u2014"
    s = int(round(float(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d} (h:mm:ss)"


def stardist_thresholds(config: dict) -> str:
    """StarDist's two thresholds and where they come from, in words."""
    how = config.get("thresholds") or {}
    text = f"{fmt(config['prob_thresh'])} / {fmt(config['nms_thresh'])}"
    if how.get("optimized"):
        return text + (f" (optimised on {how.get('n_images')} validation image(s): mean matching accuracy "
                       f"{fmt(how.get('value'))} at IoU {', '.join(fmt(t) for t in how.get('iou_thresholds', []))})")
    return text + (f" (defaults: {how['reason']})" if how.get("reason") else " (defaults)")


def names(files) -> str:
    files = list(files or [])
    shown = ", ".join(map(str, files[:MAX_NAMES]))
    return shown + (f" ... and {len(files) - MAX_NAMES} more" if len(files) > MAX_NAMES else "")


def parameters(rep: Report, config: dict, spec, with_help: bool = True):
    """Every parameter with its value, default and help; changed ones are tinted and starred."""
    values = dict(config.get("parameters") or {})
    rows, changed = [], []
    for p in (spec.parameters if spec else ()):
        value = values.pop(p.name, p.default)
        is_changed = value != p.default
        changed.append(is_changed)
        rows.append([p.name + (" *" if is_changed else ""), value, p.default] + ([p.help] if with_help else []))
    for name, value in values.items():  # recorded but not in the spec (older or imported models)
        changed.append(False)
        rows.append([name, value, "\u2014"] + (["(not in the current spec)"] if with_help else []))
    header = ["parameter", "value", "default"] + (["meaning"] if with_help else [])
    widths = [0.2, 0.12, 0.12, 0.56] if with_help else [0.5, 0.25, 0.25]
    rep.table(header, rows, widths, size=7.5, highlight=lambda i: changed[i])
    if any(changed):
        rep.paragraph("* changed from the default (tinted rows).", size=7.5, color="0.35")


def data(rep: Report, config: dict):
    d = config.get("data") or {}
    shapes = Counter("\u00d7".join(map(str, s)) for s in d.get("shapes") or [])
    rep.key_values([
        ("source folder", d.get("source")), ("target folder", d.get("target")),
        ("image pairs", d.get("n_pairs")), ("axes", config.get("axes")),
        ("source dtype", d.get("source_dtype")), ("target dtype", config.get("target_dtype", d.get("target_dtype"))),
        ("shapes", ", ".join(f"{k} ({v})" for k, v in shapes.items()) or None),
        (f"training files ({len(d.get('train_files') or [])})", names(d.get("train_files"))),
        (f"validation files ({len(d.get('val_files') or [])})", names(d.get("val_files"))),
        ("started from", config.get("transfer_from") or "random initialisation"),
    ])


def normalisation(rep: Report, config: dict):
    norm = config.get("normalization") or {}
    if not norm:
        return
    lines = []
    for role, n in norm.items():
        if not isinstance(n, dict):
            lines.append((role, fmt(n)))
        elif n.get("method") in ("percentile", "meanstd"):
            lines.append((role, describe_normalization(n)))
        elif n.get("method") == "fixed":
            lines.append((role, describe_normalization(n) + " (predictions are mapped back to this scale)"))
        else:
            lines.append((role, ", ".join(f"{k}: {fmt(v)}" for k, v in n.items())))
    rep.key_values(lines)


def environment(rep: Report, env: dict | None, title_extra: list | None = None):
    pairs = [(k, v) for k, v in (env or {}).items()] + list(title_extra or [])
    rep.key_values(pairs)


def citations(rep: Report, cites):
    cites = list(cites or [])
    if not cites:
        rep.paragraph("No citation is recorded for this network.")
    for i, c in enumerate(cites, 1):
        text = c.get("text", "") if isinstance(c, dict) else str(c)
        doi = c.get("doi") if isinstance(c, dict) else None
        rep.paragraph(f"[{i}] {text}" + (f" doi:{doi}" if doi else ""), size=8.5)
