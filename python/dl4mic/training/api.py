"""The one training loop for every network: logs, checkpoints, resume, transfer learning, progress."""

from __future__ import annotations

import csv
import io
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.check import check_data
from ..data.io import atomic_path, channels_first, read_image
from ..data.patches import ImageCache, PatchSampler, fixed_batches, split_regions
from ..errors import UserError
from ..networks import get_network
from ..predict.model import pick_device, read_model_config
from ..specs import load_spec
from .model_folder import ModelFolder, environment, now_iso
from .progress import Cancelled, Progress

LOG_COLUMNS = ("epoch", "loss", "val_loss", "lr", "seconds")


def bf16_fast(device: torch.device) -> bool:
    """Whether bfloat16 autocast is fast here: CUDA with bf16, or a CPU with AVX-512-BF16/AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def _autocast(device: torch.device, precision: str):
    if precision == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def _to_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(a).to(device).contiguous(memory_format=torch.channels_last)


def _transfer_source(path: Path) -> tuple[Path, dict]:
    """Model folder (or bundle) whose best weights and learning rate start a transfer-learning run."""
    if path.is_file() and path.suffix == ".zip":
        from ..export.bundle import model_dir_from_bundle

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


def _write_log(folder: ModelFolder, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(LOG_COLUMNS) + sorted({k for h in history for k in h} - set(LOG_COLUMNS)))
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    with atomic_path(folder.log) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def _save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _report(folder: ModelFolder) -> None:
    from ..reports.training_report import write_training_report

    write_training_report(folder.root)


def train(network: str, source, model, target=None, *, epochs: int | None = None, patch_size: int | None = None,
          batch_size: int | None = None, val_split: float | None = None, augment: bool | None = None,
          seed: int | None = None, params: dict | None = None, from_model=None, resume: bool = False,
          overwrite: bool = False, axes: str | None = None, device: str | None = None,
          progress: str = "auto", callback: Callable[[dict], bool | None] | None = None) -> Path:
    """Train `network` on paired folders and write the model folder `model`; returns its path.

    With `resume`, continues the run in `model` from its last complete epoch (`epochs` may extend it)."""
    folder = ModelFolder(model)
    given = dict(params or {})
    for name, value in (("epochs", epochs), ("patch_size", patch_size), ("batch_size", batch_size),
                        ("val_split", val_split), ("augment", augment), ("seed", seed)):
        if value is not None:
            given[name] = value
    if resume:
        if not folder.checkpoint.is_file():
            raise UserError(f"{folder.root} has no checkpoint.pt to resume from; train it without --resume first.")
        config = folder.read()
        network, source, target = config["network"], config["data"]["source"], config["data"]["target"]
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
    summary = check_data(spec, source, target, axes)
    if summary.n_channels > 1:
        p["n_channels"] = summary.n_channels
    if p["patch_size"] % net.multiple(p):
        raise UserError(f"patch_size {p['patch_size']} must be a multiple of {net.multiple(p)} for a U-Net of depth "
                        f"{p.get('depth')}; use e.g. {p['patch_size'] - p['patch_size'] % net.multiple(p) or net.multiple(p)}.")
    transfer = None
    if from_model is not None and not resume:
        transfer_dir, transfer_cfg = _transfer_source(Path(from_model))
        if transfer_cfg["network"] != spec.name:
            raise UserError(f"{from_model} is a {transfer_cfg['network']} model; --from needs a {spec.name} model.")
        if transfer_cfg["parameters"].get("n_channels", 1) != p.get("n_channels", 1):
            raise UserError(f"{from_model} was trained on {transfer_cfg['parameters'].get('n_channels', 1)}-channel "
                            f"images and {source} has {p.get('n_channels', 1)}; --from needs the same channels.")
        for key in ("depth", "filters", "kernel_size", "batch_norm"):
            if key in p and transfer_cfg["parameters"].get(key) != p[key]:
                p[key] = transfer_cfg["parameters"][key]
        p["learning_rate"] = _lr_at_best_epoch(ModelFolder(transfer_dir), p["learning_rate"])
        transfer = transfer_dir
    if not resume:
        folder.prepare_new(overwrite, [summary.source, summary.target])

    dev = pick_device(device)
    precision = p["precision"] if p["precision"] != "auto" else ("bfloat16" if bf16_fast(dev) else "float32")
    torch.manual_seed(p["seed"])
    pairs = summary.pairs
    train_regions, val_regions = split_regions(pairs, summary.shapes, p["val_split"], p["seed"], p["patch_size"])
    if resume:
        normalizer_cfg = config["normalization"]
        from ..data.normalize import Normalizer

        normalizer = Normalizer(normalizer_cfg)
    else:
        train_idx = sorted({r.index for r in train_regions})
        normalizer = net.fit_normalization(
            p, lambda role: [channels_first(read_image(pairs[i][0 if role == "source" else 1]), summary.axes)
                             for i in train_idx])
    cache = ImageCache(pairs, net.prepare(normalizer, p), int(p["cache_mb"]) * 2**20)
    rng = np.random.default_rng(p["seed"])
    sampler = PatchSampler(train_regions, summary.shapes, cache, p["patch_size"], rng, augment=p["augment"],
                           crop=net.patch_crop(p))
    val_batches = []
    if val_regions:
        val_sampler = PatchSampler(val_regions, summary.shapes, cache, p["patch_size"],
                                   np.random.default_rng(p["seed"] + 1))
        val_rng = np.random.default_rng(p["seed"] + 2)
        val_batches = [net.training_batch(x, y, val_rng, p)
                       for x, y in fixed_batches(val_sampler, p["val_patches"], p["batch_size"])]

    if not resume:
        config = {
            "dl4mic_version": environment(dev)["dl4mic"], "format": 1, "name": folder.root.resolve().name,
            "network": spec.name, "task": spec.task, "created": now_iso(), "parameters": p, "axes": summary.axes,
            "normalization": normalizer.as_dict(), "target_dtype": summary.target_dtype,
            "data": {
                "source": str(Path(summary.source).resolve()),
                "target": str(Path(summary.target).resolve()) if summary.target else None,
                "n_pairs": len(pairs), "source_dtype": summary.source_dtype,
                "train_files": sorted({pairs[r.index][0].name for r in train_regions}),
                "val_files": sorted({pairs[r.index][0].name for r in val_regions}),
                "split": "files" if len(pairs) > 1 else "strips of one image",
                "shapes": [list(s) for s in summary.shapes],
            },
            "environment": {**environment(dev), "precision": precision},
            "transfer_from": str(Path(transfer).resolve()) if transfer else None,
            "training": {"status": "running", "started": now_iso(), "epochs_done": 0},
        }
        if spec.task == "segmentation":
            config["threshold"] = float(p["threshold"])
        folder.write(config)
        _report(folder)

    module = net.build(p).to(dev).to(memory_format=torch.channels_last)
    if transfer is not None:
        module.load_state_dict(torch.load(ModelFolder(transfer).best, map_location=dev, weights_only=True))
    optimizer = torch.optim.Adam(module.parameters(), lr=p["learning_rate"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=p["lr_factor"], patience=p["lr_patience"])
    loss_fn = net.loss(p)
    history, best_val, start_epoch = [], math.inf, 0
    if resume:
        state = torch.load(folder.checkpoint, map_location=dev, weights_only=True)
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]
        history, best_val, start_epoch = state["history"], state["best_val"], state["epoch"]
        config["training"]["status"] = "running"
    folder.weights.mkdir(parents=True, exist_ok=True)
    folder.training.mkdir(parents=True, exist_ok=True)

    def predict_batches(batches):
        module.eval()
        outs = []
        with torch.inference_mode(), _autocast(dev, precision):
            for x, _ in batches:
                outs.append(module(_to_tensor(x, dev)).float().cpu().numpy())
        return outs

    reporter = Progress(progress, callback)
    total = int(p["epochs"])
    reporter.start(total, f"{spec.name} {folder.root.name}", initial=start_epoch)
    started = time.time()
    try:
        for epoch in range(start_epoch + 1, total + 1):
            t0 = time.time()
            module.train()
            losses = []
            for _ in range(int(p["steps_per_epoch"])):
                x, y = net.training_batch(*sampler.sample(p["batch_size"]), rng, p)
                xt, yt = _to_tensor(x, dev), _to_tensor(y, dev)
                optimizer.zero_grad(set_to_none=True)
                with _autocast(dev, precision):
                    out = module(xt)
                loss = loss_fn(out.float(), yt)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            train_loss = float(np.mean(losses))
            if not math.isfinite(train_loss):
                raise UserError(f"Training of {folder.root} diverged (loss is {train_loss}) at epoch {epoch}; "
                                f"lower the learning rate (e.g. --param learning_rate={p['learning_rate'] / 10:g}).")
            val_loss = float("nan")
            if val_batches:
                module.eval()
                with torch.inference_mode(), _autocast(dev, precision):
                    val_loss = float(np.mean([float(loss_fn(module(_to_tensor(x, dev)).float(), _to_tensor(y, dev)))
                                              for x, y in val_batches]))
            score = val_loss if val_batches else train_loss
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step(score)
            row = {"epoch": epoch, "loss": train_loss, "val_loss": val_loss, "lr": lr,
                   "seconds": round(time.time() - t0, 3)}
            history.append(row)
            state_dict = module.state_dict()
            if score < best_val:
                best_val = score
                _save(state_dict, folder.best)
            _save(state_dict, folder.last)
            _save({"model": state_dict, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                   "torch_rng": torch.get_rng_state(), "numpy_rng": rng.bit_generator.state, "history": history,
                   "best_val": best_val, "epoch": epoch}, folder.checkpoint)
            _write_log(folder, history)
            config["training"]["epochs_done"] = epoch
            reporter.update({"event": "epoch", "epoch": epoch, "epochs": total, "loss": train_loss,
                             "val_loss": val_loss, "lr": lr, "seconds": row["seconds"]},
                            {"loss": train_loss, "val_loss": val_loss})
            if p["max_minutes"] and time.time() - started >= 60 * p["max_minutes"] and epoch < total:
                config["training"]["stopped_early"] = f"time limit of {p['max_minutes']:g} minutes after epoch {epoch}"
                break
    except (KeyboardInterrupt, Cancelled):
        reporter.close()
        config["training"]["status"] = "interrupted"
        folder.write(config)
        raise
    reporter.close()

    module.load_state_dict(torch.load(folder.best, map_location=dev, weights_only=True))
    val_images = (lambda: [tuple(a[..., r.y0:r.y1, :] if a is not None else None for a in cache.get(r.index))
                           for r in val_regions]) if val_regions else None
    config.update(net.finalize(predict_batches, val_batches, p, val_images))
    best = min(history, key=lambda r: r["val_loss"] if val_batches else r["loss"]) if history else {}
    config["training"].update({
        "status": "finished", "finished": now_iso(), "epochs_done": len(history),
        "seconds": round(sum(r["seconds"] for r in history), 2), "session_seconds": round(time.time() - started, 2),
        "best_epoch": int(best.get("epoch", 0)), "best_val_loss": float(best_val),
    })
    folder.write(config)
    _report(folder)
    reporter.emit({"event": "done", "model": str(folder.root), "best_epoch": config["training"]["best_epoch"],
                   "best_val_loss": float(best_val)})
    return folder.root
