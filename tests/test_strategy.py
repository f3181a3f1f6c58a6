"""The training protocol beyond one module: a two-module strategy (two optimisers, a history pool with
its own random generator) trains through the one loop, and a run interrupted after an epoch and resumed
ends with weights identical, bit for bit at float32, to an uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dl4mic
from dl4mic.networks import register
from dl4mic.networks.base import Network, Outputs
from dl4mic.specs import register_spec
from dl4mic.progress import Cancelled
from dl4mic.training.strategies import Strategy

from helpers import copy_pairs

SPEC = {"name": "pairtoy", "title": "Two-module toy", "task": "restoration", "summary": "A protocol test.",
        "data": {"source": {"kind": "image", "ndim": 2}, "target": {"kind": "image", "ndim": 2}},
        "defaults": {"patch_size": 16, "batch_size": 2, "steps_per_epoch": 3, "val_patches": 4,
                     "precision": "float32"},
        "parameters": [{"name": "depth", "type": "int", "default": 0, "help": "no down-sampling"},
                       {"name": "kernel_size", "type": "int", "default": 3, "help": "kernel"}]}


class PoolStrategy(Strategy):
    """A generator G (L1 + adversarial term) and a critic D (least squares) with their own Adams, and a
    pool of past generator outputs drawn with the strategy's own random generator."""

    metrics = ("loss", "loss_d")

    def setup(self, modules, rt):
        self.modules = modules
        self.opt = {k: torch.optim.Adam(m.parameters(), lr=1e-2, betas=(0.5, 0.999)) for k, m in modules.items()}
        self.pool: list[torch.Tensor] = []
        self.rng = np.random.default_rng(7)

    def training_step(self, batch, rt):
        g, d = self.modules["G"], self.modules["D"]
        x, y = rt.tensor(batch["source"]), rt.tensor(batch["target"])
        fake = g(x)
        self.opt["G"].zero_grad()
        loss_g = (fake - y).abs().mean() + 0.1 * ((d(fake) - 1) ** 2).mean()
        loss_g.backward()
        self.opt["G"].step()
        self.pool.append(fake.detach())
        self.pool = self.pool[-3:]
        old = self.pool[int(self.rng.integers(len(self.pool)))]
        self.opt["D"].zero_grad()
        loss_d = ((d(y) - 1) ** 2).mean() + (d(old) ** 2).mean()
        loss_d.backward()
        self.opt["D"].step()
        return {"loss": float(loss_g.detach()), "loss_d": float(loss_d.detach())}

    def validation_step(self, batch, rt):
        with torch.inference_mode():
            return {"val_loss": float((self.modules["G"](rt.tensor(batch["source"])) - rt.tensor(batch["target"]))
                                      .abs().mean())}

    def learning_rate(self):
        return self.opt["G"].param_groups[0]["lr"]

    def state_dict(self):
        return {"opt": {k: o.state_dict() for k, o in self.opt.items()}, "pool": list(self.pool),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        for k, o in self.opt.items():
            o.load_state_dict(state["opt"][k])
        self.pool = list(state["pool"])
        self.rng.bit_generator.state = state["rng"]


@register
class PairToy(Network):
    name = "pairtoy"
    predictor = "G"
    target_normalization = "source"

    def build(self, params):
        return torch.nn.Conv2d(1, 1, 3, padding=1)

    def modules(self, params):
        return {"G": self.build(params),
                "D": torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1))}

    def strategy(self, params):
        return PoolStrategy(self, params)

    def prepare(self, normalizer, params):
        from dl4mic.data.normalize import scale

        def prepare(source, target):
            r = normalizer.source_range(source)
            return scale(source, *r), scale(target, *r)

        return prepare

    def outputs(self, raw_output, image, normalizer, source_range, config):
        return Outputs({"restored": (raw_output[0], "YX")})

    def output_keys(self, config):
        return ["restored"]


register_spec(SPEC)


def _checkpoint(model):
    return torch.load(model / "checkpoint.pt", weights_only=True)


def test_two_module_strategy_resumes_bit_for_bit(tmp_path, samples):
    src, tgt = copy_pairs(samples / "train", tmp_path / "data", ["fov01.tif", "fov04.tif", "fov07.tif"])
    straight = dl4mic.train("pairtoy", source=src, target=tgt, model=tmp_path / "straight", epochs=4,
                            progress="none")

    def stop_after_two(event):
        return not (event.get("event") == "epoch" and event["epoch"] == 2)

    with pytest.raises(Cancelled):
        dl4mic.train("pairtoy", source=src, target=tgt, model=tmp_path / "resumed", epochs=4, progress="none",
                     callback=stop_after_two)
    assert _checkpoint(tmp_path / "resumed")["epoch"] == 2
    dl4mic.train("pairtoy", source=src, target=tgt, model=tmp_path / "resumed", epochs=4, resume=True,
                 progress="none")
    a, b = _checkpoint(straight), _checkpoint(tmp_path / "resumed")
    assert a["epoch"] == b["epoch"] == 4
    for name in ("G", "D"):
        for key, value in a["modules"][name].items():
            assert torch.equal(value, b["modules"][name][key]), (name, key)
    assert [r["loss_d"] for r in a["history"]] == [r["loss_d"] for r in b["history"]]
    assert set(b["history"][0]) >= {"epoch", "loss", "loss_d", "val_loss", "lr", "seconds"}
    assert torch.equal(torch.load(straight / "weights" / "best.pt", weights_only=True)["weight"],
                       torch.load(tmp_path / "resumed" / "weights" / "best.pt", weights_only=True)["weight"])
