"""What every network module supplies; the training loop, predict and QC use only this protocol."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..data.normalize import Normalizer, fit_normalizer
from ..specs import Spec, load_spec


class Network:
    """One network family: its model, its training samples, its loss and how it predicts one image.

    Subclasses set `name` (the spec name) and implement `build`, `prepare`, `loss` and `outputs`."""

    name: str = ""
    target_normalization: str | None = None  # "source" | "fixed" for restoration targets

    @property
    def spec(self) -> Spec:
        return load_spec(self.name)

    @property
    def task(self) -> str:
        return self.spec.task

    # --- model -----------------------------------------------------------------------------------
    def build(self, params: dict) -> torch.nn.Module:
        raise NotImplementedError

    def multiple(self, params: dict) -> int:
        """Input sides must be multiples of this (down-sampling levels)."""
        return 2 ** int(params.get("depth", 0))

    def halo(self, params: dict) -> int:
        """Context in pixels each side that tiled prediction adds around a tile."""
        from .unet import receptive_halo

        return receptive_halo(int(params["depth"]), int(params["kernel_size"]))

    # --- data ------------------------------------------------------------------------------------
    def fit_normalization(self, params: dict, train_images: Callable[[str], list[np.ndarray]]) -> Normalizer:
        """The normalisation for training; `train_images("source" | "target")` reads the training images."""
        method = params.get("target_normalization", self.target_normalization)
        sources = train_images("source") if params.get("normalization") == "dataset" else None
        return fit_normalizer(params, train_images("target") if method == "fixed" else None, method, sources)

    def prepare(self, normalizer: Normalizer, params: dict) -> Callable:
        """A function (raw source, raw target) -> (network input, training target) as float32 arrays."""
        raise NotImplementedError

    def patch_crop(self, params: dict) -> Callable | None:
        """Patch selection for the training sampler (`PatchSampler`'s `crop`), e.g. foreground-biased
        patches; None for uniform random patches."""
        return None

    # --- training --------------------------------------------------------------------------------
    def training_batch(self, x: np.ndarray, y: np.ndarray | None, rng: np.random.Generator,
                       params: dict) -> tuple[np.ndarray, np.ndarray]:
        """Per-batch transform of sampled patches into (network input, loss target); e.g. Noise2Void masks
        pixels here. Applied to training and (once, fixed) validation batches."""
        return x, y

    def loss(self, params: dict) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    def finalize(self, predict_batches: Callable, val_batches: list, params: dict,
                 val_images: Callable[[], list[tuple[np.ndarray, np.ndarray]]] | None = None) -> dict:
        """Settings chosen after training on the validation data (e.g. a threshold); stored in model.yaml.
        `val_images()` gives the whole prepared validation regions as (input, target) pairs, for settings
        that patches would bias (StarDist's thresholds)."""
        return {}

    # --- export ----------------------------------------------------------------------------------
    def export_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """The graph a bioimage.io bundle runs (before the in-graph sigmoid an `ExportSpec` may ask for)."""
        return module

    # --- prediction ------------------------------------------------------------------------------
    def outputs(self, raw_output: np.ndarray, image: np.ndarray, normalizer: Normalizer,
                source_range: tuple[float, float], config: dict) -> dict[str, np.ndarray]:
        """Turn the network's raw 2D output for one image into the user-facing arrays."""
        raise NotImplementedError
