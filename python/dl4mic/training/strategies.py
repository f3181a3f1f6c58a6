"""Training strategies: what one training step and one validation step do, and which score picks the
best epoch. The loop in `training.loop` owns everything else (epochs, logs, checkpoints, resume).

A strategy holds the modules, their optimisers and schedulers; its `state_dict` must contain every
piece of state a step depends on (optimisers, schedulers, pools, its own random generators), so that
`--resume` after a kill continues exactly."""

from __future__ import annotations

import numpy as np
import torch

from .runtime import Runtime


class Strategy:
    """The interface the loop drives. `modules` are set by `setup` (built by the network)."""

    metrics: tuple[str, ...] = ("loss",)      # training columns of the log, `loss` first
    val_metrics: tuple[str, ...] = ("val_loss",)

    def __init__(self, network, params: dict):
        self.network, self.params = network, params
        self.modules: dict[str, torch.nn.Module] = {}

    def setup(self, modules: dict[str, torch.nn.Module], rt: Runtime) -> None:
        raise NotImplementedError

    def batch(self, x: np.ndarray, y: np.ndarray | None, rng: np.random.Generator) -> dict:
        """Sampled patches -> the step's batch ({"source", "target"}); validation batches are made once."""
        x, y = self.network.training_batch(x, y, rng, self.params)
        return {"source": x, "target": y}

    def training_step(self, batch: dict, rt: Runtime) -> dict[str, float]:
        raise NotImplementedError

    def validation_step(self, batch: dict, rt: Runtime) -> dict[str, float]:
        raise NotImplementedError

    def score(self, val: dict[str, float]) -> float:
        """Lower is better; picks the best epoch (and drives plateau schedulers)."""
        return float(val["val_loss"])

    def end_epoch(self, score: float) -> None:
        """After validation: learning-rate schedules."""

    def learning_rate(self) -> float:
        raise NotImplementedError

    def predict(self, x: np.ndarray, rt: Runtime) -> np.ndarray:
        """The predictor module on one batch (evaluation mode), as numpy float32."""
        module = self.modules[self.network.predictor]
        module.eval()
        with torch.inference_mode(), rt.autocast():
            return module(rt.tensor(x)).float().cpu().numpy()

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


class Supervised(Strategy):
    """One module, Adam, a plateau learning-rate schedule and the network's loss on (input, target)."""

    def setup(self, modules, rt):
        self.modules = modules
        (self.module,) = modules.values()
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=float(self.params["learning_rate"]))
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=float(self.params["lr_factor"]), patience=int(self.params["lr_patience"]))
        self.loss_fn = self.network.loss(self.params)

    def training_step(self, batch, rt):
        self.module.train()
        x, y = rt.tensor(batch["source"]), rt.tensor(batch["target"])
        self.optimizer.zero_grad(set_to_none=True)
        with rt.autocast():
            out = self.module(x)
        loss = self.loss_fn(out.float(), y)
        loss.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach())}

    def validation_step(self, batch, rt):
        self.module.eval()
        with torch.inference_mode(), rt.autocast():
            out = self.module(rt.tensor(batch["source"]))
            return {"val_loss": float(self.loss_fn(out.float(), rt.tensor(batch["target"])))}

    def end_epoch(self, score):
        self.scheduler.step(score)

    def learning_rate(self):
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


class SelfSupervised(Supervised):
    """Noise2Void: the target is the input itself, seen only at blind spots masked in every batch
    (N2V: a random neighbour's value; N2V2: the neighbourhood's median)."""

    def batch(self, x, y, rng):
        from .blind_spot import blind_spot_mask

        strategy = "median" if self.params.get("variant", "n2v") == "n2v2" else "uniform"
        masked, mask = blind_spot_mask(x, float(self.params["masked_pixel_percentage"]) / 100.0,
                                       int(self.params["neighborhood_radius"]), strategy, rng)
        return {"source": masked, "target": np.concatenate([np.asarray(x, np.float32), mask], axis=1)}
