"""`dl4mic.train`: check the data, fix the parameters and geometry, write the model folder, then run the
one loop (`training.loop`) with the network's strategy; transfer learning and resume."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.sources import validation_batches
from ..errors import UserError
from ..networks import get_network
from ..networks.geometry import round_down
from ..specs import load_spec
from ..model_folder import MODEL_FORMAT, ModelFolder, environment, now_iso, read_model_config
from ..progress import Progress
from .loop import TrainingState, run_epochs
from .runtime import Runtime, bf16_fast, pick_device


def _transfer_source(path: Path) -> tuple[Path, dict]:
    """Model folder (or bundle) whose best weights and learning rate start a transfer-learning run."""
    if path.is_file() and path.suffix == ".zip":
        from ..export.package import model_dir_from_bundle

        path = model_dir_from_bundle(path)
    return path, read_model_config(path)


def _lr_at_best_epoch(folder: ModelFolder, fallback: float) -> float:
    """ZeroCostDL4Mic's rule: transfer learning starts from the source model's learning rate at its best epoch."""
    if not folder.log.is_file():
        return fallback
    with open(folder.log, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh)]
    scored = [r for r in rows if r.get("val_loss") not in (None, "", "nan")] or rows
    if not scored:
        return fallback
    key = "val_loss" if scored[0].get("val_loss") not in (None, "", "nan") else "loss"
    best = min(scored, key=lambda r: float(r[key]))
    return float(best["lr"])


def _report(folder: ModelFolder) -> None:
    from ..reports.training_report import write_training_report

    write_training_report(folder.root)


def _fit_patch(net, p: dict, summary, explicit: bool, notes: list[str]) -> dict:
    """Cap a default patch size to the smallest image (with a note); an explicit one is kept (and refused
    later with the fix if it does not fit)."""
    geometry = net.geometry(p, summary.spacing)
    smallest = tuple(min(s[-geometry.ndim:][i] for s in summary.shapes) for i in range(geometry.ndim))
    if not explicit and any(a > b for a, b in zip(geometry.patch, smallest)):
        fit = (min(smallest),) * 2 if geometry.ndim == 2 and len(set(geometry.patch)) == 1 else smallest
        capped = round_down(tuple(min(a, b) for a, b in zip(geometry.patch, fit)), geometry.multiple)
        if all(c <= s for c, s in zip(capped, smallest)):
            p = {**p, "patch_size": capped[0] if len(set(capped)) == 1 and geometry.ndim == 2 else list(capped)}
            notes.append(f"the default patch size {'x'.join(map(str, geometry.patch))} is larger than the smallest "
                         f"image ({'x'.join(map(str, smallest))}); patches of {'x'.join(map(str, capped))} are used.")
    net.check_geometry(p, net.geometry(p, summary.spacing))
    return p


def train(network: str, source, model, target=None, **kwargs) -> Path:
    """Train `network` on paired folders and write the model folder `model`; returns its path.

    Keywords: epochs, patch_size, batch_size, val_split, augment, seed, params (any spec parameter),
    from_model (transfer learning), resume (continue `model` from its last complete epoch; `epochs` may
    extend it), overwrite, axes, device, progress, callback. The model folder is locked while training:
    a second `train` on it refuses in one sentence."""
    from ..locks import locked

    return locked(model, "train", lambda: _train(network, source, model, target, **kwargs))


def _train(network: str, source, model, target=None, *, epochs: int | None = None, patch_size=None,
           batch_size: int | None = None, val_split: float | None = None, augment: bool | None = None,
           seed: int | None = None, params: dict | None = None, from_model=None, resume: bool = False,
           overwrite: bool = False, axes: str | None = None, device: str | None = None,
           progress: str = "auto", callback: Callable[[dict], bool | None] | None = None) -> Path:
    folder = ModelFolder(model)
    folder.remove_partials()  # what a killed run was writing (the folder is locked: nobody else writes)
    given = dict(params or {})
    for name, value in (("epochs", epochs), ("patch_size", patch_size), ("batch_size", batch_size),
                        ("val_split", val_split), ("augment", augment), ("seed", seed)):
        if value is not None:
            given[name] = value
    config = None
    if resume:
        if not folder.checkpoint.is_file():
            raise UserError(f"{folder.root} has no checkpoint.pt to resume from; train it without --resume first.")
        config = folder.read()
        network, source, target = config["network"], config["data"]["source"], config["data"]["target"]
        axes = config.get("data", {}).get("axes_override", axes)
        stored = dict(config["parameters"])
        stored.pop("n_channels", None)  # derived from the data again below
        if "epochs" in given:
            stored["epochs"] = given.pop("epochs")
        if given:
            raise UserError(f"--resume continues {folder.root} with its own parameters; leave out {', '.join(given)} "
                            f"or start a new model.")
        given = stored
    spec = load_spec(network)
    net = get_network(spec.name)
    p = spec.resolve(given)
    data = net.data_source(spec, p, source, target, axes)
    summary = data.summary
    if summary.n_channels > 1:
        p["n_channels"] = summary.n_channels
    p = net.resolve(p, summary.spacing, data)
    notes: list[str] = []
    p = _fit_patch(net, p, summary, "patch_size" in given, notes)
    geometry = net.geometry(p, summary.spacing)
    transfer = None
    if from_model is not None and not resume:
        transfer_dir, transfer_cfg = _transfer_source(Path(from_model))
        if transfer_cfg["network"] != spec.name:
            raise UserError(f"{from_model} is a {transfer_cfg['network']} model; --from needs a {spec.name} model.")
        if transfer_cfg["parameters"].get("n_channels", 1) != p.get("n_channels", 1):
            raise UserError(f"{from_model} was trained on {transfer_cfg['parameters'].get('n_channels', 1)}-channel "
                            f"images and {source} has {p.get('n_channels', 1)}; --from needs the same channels.")
        for key in ("depth", "filters", "kernel_size", "batch_norm", "pool_z", "n_classes", "n_rays", "grid",
                    "anisotropy", "conv_after_unet"):  # what the weights (and StarDist's rays) depend on
            if key in p and key in transfer_cfg["parameters"] and transfer_cfg["parameters"][key] != p[key]:
                p[key] = transfer_cfg["parameters"][key]
        p["learning_rate"] = _lr_at_best_epoch(ModelFolder(transfer_dir), p["learning_rate"])
        transfer = transfer_dir
        geometry = net.geometry(p, summary.spacing)  # the inherited layout may pool differently
        net.check_geometry(p, geometry)
    data.split(p["val_split"], p["seed"], geometry.patch)
    if not resume:
        folder.prepare_new(overwrite, data.inputs())

    dev = pick_device(device)
    precision = p["precision"] if p["precision"] != "auto" else ("bfloat16" if bf16_fast(dev) else "float32")
    rt = Runtime(dev, precision)
    torch.manual_seed(p["seed"])

    normalizer = net.normalizer(config) if resume else net.fit_normalization(p, data.fit_images)
    rng = np.random.default_rng(p["seed"])
    sampler, val_sampler = data.samplers(net.prepare(normalizer, p), geometry.patch, rng, augment=p["augment"],
                                         crop=net.patch_crop(p), cache_bytes=int(p["cache_mb"]) * 2**20,
                                         seed=p["seed"], normalizer=normalizer,
                                         prepare_for=lambda n: net.prepare(n, p))
    strategy = net.strategy(p)
    val_batches = validation_batches(val_sampler, p["val_patches"], p["batch_size"], strategy.batch,
                                     np.random.default_rng(p["seed"] + 2))

    if not resume:
        config = {
            "dl4mic_version": environment(dev)["dl4mic"], "format": MODEL_FORMAT, "name": folder.root.resolve().name,
            "network": spec.name, "task": spec.task, "created": now_iso(), "parameters": p, "axes": summary.axes,
            "spacing": list(summary.spacing) if summary.spacing else None, "geometry": geometry.as_dict(),
            "normalization": normalizer.as_dict(), "target_dtype": summary.target_dtype,
            "data": data.provenance(),
            "notes": notes,
            "environment": {**environment(dev), "precision": precision},
            "transfer_from": str(Path(transfer).resolve()) if transfer else None,
            "training": {"status": "running", "started": now_iso(), "epochs_done": 0},
            **net.initial_config(p),
        }
        folder.write(config)
        _report(folder)

    modules = {k: rt.prepare_module(m) for k, m in net.modules(p).items()}
    if transfer is not None:
        source = ModelFolder(transfer)
        modules[net.predictor].load_state_dict(source.load_weights(source.best, map_location=dev))
    strategy.setup(modules, rt)
    state = TrainingState(rng)
    if resume:
        state.restore(folder.load_weights(folder.checkpoint, map_location=dev), strategy)
        config["training"]["status"] = "running"
    folder.weights.mkdir(parents=True, exist_ok=True)
    folder.training.mkdir(parents=True, exist_ok=True)

    reporter = Progress(progress, callback)
    reporter.start(int(p["epochs"]), f"{spec.name} {folder.root.name}", initial=state.epoch)
    session = run_epochs(folder, strategy, rt, sampler, val_batches, state, p, config, reporter, folder.write)

    predictor = modules[net.predictor]
    predictor.load_state_dict(folder.load_weights(folder.best, map_location=dev))

    def predict_batches(inputs):
        return [strategy.predict(x, rt) for x in inputs]

    config.update(net.finalize(predict_batches, val_batches, p, data.val_images()))
    history = state.history
    best = min(history, key=lambda r: r["val_loss"] if val_batches else r["loss"]) if history else {}
    config["training"].update({
        "status": "finished", "finished": now_iso(), "epochs_done": len(history),
        "seconds": round(sum(r["seconds"] for r in history), 2), "session_seconds": round(session, 2),
        "best_epoch": int(best.get("epoch", 0)), "best_val_loss": float(state.best),
    })
    folder.write(config)
    _report(folder)
    reporter.emit({"event": "done", "model": str(folder.root), "best_epoch": config["training"]["best_epoch"],
                   "best_val_loss": float(state.best)})
    return folder.root
