"""The one training loop for every network and strategy: epochs, time budget, CSV log, progress,
best/last weights, a checkpoint of every module, optimiser, scheduler and random state, and resume."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..data.io import atomic_path
from ..errors import UserError
from ..model_folder import ModelFolder, write_torch
from ..progress import Cancelled, Progress
from .runtime import Runtime
from .strategies import Strategy

LOG_COLUMNS = ("epoch", "loss", "val_loss", "lr", "seconds")


def write_log(folder: ModelFolder, history: list[dict]) -> None:
    buf = io.StringIO()
    extra = sorted({k for h in history for k in h} - set(LOG_COLUMNS))
    writer = csv.DictWriter(buf, fieldnames=list(LOG_COLUMNS) + extra)
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    with atomic_path(folder.log) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def save(obj, path: Path) -> None:
    write_torch(obj, path)


class TrainingState:
    """What a checkpoint restores besides the strategy: history, best score, epoch, random generators."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.history, self.best, self.epoch = rng, [], math.inf, 0

    def checkpoint(self, strategy: Strategy) -> dict:
        return {"format": 2, "modules": {k: m.state_dict() for k, m in strategy.modules.items()},
                "strategy": strategy.state_dict(), "torch_rng": torch.get_rng_state(),
                "numpy_rng": self.rng.bit_generator.state, "history": self.history, "best_val": self.best,
                "epoch": self.epoch}

    def restore(self, state: dict, strategy: Strategy) -> None:
        if "modules" not in state:  # checkpoints of dl4mic 0.1: one module, one optimiser
            state = {**state, "modules": {strategy.network.predictor: state["model"]},
                     "strategy": {"optimizer": state["optimizer"], "scheduler": state["scheduler"]}}
        for name, module in strategy.modules.items():
            module.load_state_dict(state["modules"][name])
        strategy.load_state_dict(state["strategy"])
        torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.history, self.best, self.epoch = list(state["history"]), float(state["best_val"]), int(state["epoch"])


def run_epochs(folder: ModelFolder, strategy: Strategy, rt: Runtime, sampler, val_batches: list, state: TrainingState,
               params: dict, config: dict, reporter: Progress, write_config) -> float:
    """Train from `state.epoch + 1` to `params["epochs"]` (or the time budget); returns the session's seconds.

    Every epoch writes weights/last.pt, weights/best.pt when the score improves (the predictor module),
    checkpoint.pt and training/log.csv, each atomically, from the main rank only."""
    predictor = strategy.modules[strategy.network.predictor]
    total, steps, batch = int(params["epochs"]), int(params["steps_per_epoch"]), int(params["batch_size"])
    started = time.time()
    try:
        for epoch in range(state.epoch + 1, total + 1):
            t0 = time.time()
            sums: dict[str, float] = {}
            for _ in range(steps):
                x, y = sampler.sample(batch)
                for k, v in strategy.training_step(strategy.batch(x, y, state.rng), rt).items():
                    sums[k] = sums.get(k, 0.0) + v
            train = {k: v / steps for k, v in sums.items()}
            if not math.isfinite(train["loss"]):
                raise UserError(f"Training of {folder.root} diverged (loss is {train['loss']}) at epoch {epoch}; "
                                f"lower the learning rate (e.g. --param learning_rate={params['learning_rate'] / 10:g}).")
            val = {"val_loss": float("nan")}
            if val_batches:
                rows = [strategy.validation_step(b, rt) for b in val_batches]
                val = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            score = strategy.score(val) if val_batches else float(train["loss"])
            lr = strategy.learning_rate()
            strategy.end_epoch(score)
            row = {"epoch": epoch, **train, **val, "lr": lr, "seconds": round(time.time() - t0, 3)}
            state.history.append(row)
            state.epoch = epoch
            if rt.is_main:
                weights = predictor.state_dict()
                if score < state.best:
                    state.best = score
                    save(weights, folder.best)
                save(weights, folder.last)
                save(state.checkpoint(strategy), folder.checkpoint)
                write_log(folder, state.history)
            elif score < state.best:
                state.best = score
            config["training"]["epochs_done"] = epoch
            reporter.update({"event": "epoch", "epoch": epoch, "epochs": total, **train, **val, "lr": lr,
                             "seconds": row["seconds"]}, {**train, **val})
            if params["max_minutes"] and time.time() - started >= 60 * params["max_minutes"] and epoch < total:
                config["training"]["stopped_early"] = f"time limit of {params['max_minutes']:g} minutes after epoch {epoch}"
                break
    except (KeyboardInterrupt, Cancelled):
        reporter.close()
        config["training"]["status"] = "interrupted"
        write_config(config)
        raise
    reporter.close()
    return time.time() - started
