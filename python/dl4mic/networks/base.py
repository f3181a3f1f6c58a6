"""What every network module supplies; the training loop, predict, QC and export use only this protocol.

A network is one module here plus one YAML in model-specs/. It says how many spatial axes it sees
(`dims`), its per-axis `Geometry`, how to build its modules, how raw data become training samples, which
training `strategy` drives it, what it writes per predicted image (`outputs` -> images with axes and
tables), its QC task and its bioimage.io export needs. docs/architecture.md walks through it."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np
import torch

from ..data.normalize import Normalizer, fit_normalizer
from ..specs import Spec, load_spec
from .geometry import Geometry, per_axis
from .unet import receptive_halo


@dataclass
class Outputs:
    """What one predicted image gives: arrays with their axes (key -> (array, axes)), and tables
    (key -> list of row dicts: objects, boxes, localisations). Keys name the files (`predict.run.SUFFIXES`)."""

    images: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)

    def __getitem__(self, key: str):
        """Arrays by key, as the 2D-era dict result was read (`result["restored"]`)."""
        if key in self.images:
            return self.images[key][0]
        return self.tables[key]

    def __contains__(self, key: str) -> bool:
        return key in self.images or key in self.tables

    def get(self, key: str, default=None):
        return self[key] if key in self else default


class Network:
    """One network family. Subclasses set `name` (the spec name) and `dims`, and implement `build`,
    `prepare`, `loss` and `outputs`; the defaults serve U-Net-shaped networks."""

    name: str = ""
    dims: int = 2                              # spatial axes the network sees: 2 (YX) or 3 (ZYX)
    target_normalization: str | None = None    # "source" | "fixed" for restoration targets
    predictor: str = "net"                     # the module that predicts (weights/best.pt holds it)

    @property
    def spec(self) -> Spec:
        return load_spec(self.name)

    @property
    def task(self) -> str:
        return self.spec.task

    def qc_task(self) -> str:
        """The QC that scores this network's outputs (qc.run's scorers are keyed by it)."""
        return self.spec.task

    @property
    def spatial_axes(self) -> str:
        return "ZYX" if self.dims == 3 else "YX"

    # --- geometry --------------------------------------------------------------------------------
    def resolve(self, params: dict, spacing: tuple | None, data=None) -> dict:
        """Parameters that depend on the data, fixed once at training time (e.g. pooling along Z from the
        voxel size); the result is stored in model.yaml, so predict needs no data. `data` is the training
        `DataSource` (its `summary` lists the checked files), for settings measured on the data."""
        if self.dims == 3 and params.get("pool_z", "yes") == "auto":
            params = dict(params)
            anisotropy = (spacing[0] / min(spacing[1:])) if spacing else 1.0
            params["pool_z"] = "no" if anisotropy > 2.0 else "yes"
        return params

    def pool(self, params: dict) -> tuple[int, ...]:
        """Down-sampling factor per spatial axis and level (anisotropic stacks may pool in YX only)."""
        if self.dims == 3:
            return (1 if params.get("pool_z", "yes") == "no" else 2, 2, 2)
        return (2,) * self.dims

    def halo(self, params: dict) -> tuple[int, ...]:
        """Context each side that tiled prediction adds around a tile, per spatial axis."""
        return tuple(receptive_halo(int(params["depth"]), int(params["kernel_size"]), p) for p in self.pool(params))

    def out_scale(self, params: dict) -> tuple[Fraction, ...]:
        return (Fraction(1),) * self.dims

    def geometry(self, params: dict, spacing: tuple | None = None) -> Geometry:
        depth = int(params.get("depth", 0))
        return Geometry(axes=self.spatial_axes, patch=per_axis(params["patch_size"], self.dims),
                        multiple=tuple(p ** depth for p in self.pool(params)), halo=self.halo(params),
                        out_scale=self.out_scale(params), spacing=tuple(spacing) if spacing else None)

    def check_geometry(self, params: dict, geometry: Geometry) -> None:
        """Refuse, with the fix, a geometry this network cannot train on (before any file is written)."""
        from .geometry import check_patch

        check_patch(geometry, self.name)

    # --- model -----------------------------------------------------------------------------------
    def build(self, params: dict) -> torch.nn.Module:
        raise NotImplementedError

    def modules(self, params: dict) -> dict[str, torch.nn.Module]:
        """Every module training needs, by name; `predictor` is the one that predicts."""
        return {self.predictor: self.build(params)}

    def strategy(self, params: dict):
        """The training step: supervised by default (training.strategies)."""
        from ..training.strategies import Supervised

        return Supervised(self, params)

    # --- data ------------------------------------------------------------------------------------
    def data_source(self, spec: Spec, params: dict, source, target=None, axes: str | None = None):
        """Where training samples come from (`data.sources`): paired folders by default."""
        from ..data.sources import FolderPairs

        return FolderPairs(spec, source, target, axes, params)

    def fit_normalization(self, params: dict, train_images: Callable[[str], list[np.ndarray]]) -> Normalizer:
        """The normalisation for training; `train_images("source" | "target")` gives the raw training images."""
        method = params.get("target_normalization", self.target_normalization)
        sources = train_images("source") if params.get("normalization") == "dataset" else None
        return fit_normalizer(params, train_images("target") if method == "fixed" else None, method, sources,
                              spatial_dims=self.dims)

    def normalizer(self, config: dict) -> Normalizer:
        return Normalizer(config["normalization"], spatial_dims=self.dims)

    def prepare(self, normalizer: Normalizer, params: dict) -> Callable:
        """A function (raw source, raw target) -> (network input, training target) as float32 arrays;
        both come channels-first ((C,) + spatial, single-channel images without the C axis)."""
        raise NotImplementedError

    def patch_crop(self, params: dict) -> Callable | None:
        """Patch selection for the training sampler (`PatchSampler`'s `crop`), e.g. foreground-biased
        patches; None for uniform random patches."""
        return None

    # --- training --------------------------------------------------------------------------------
    def training_batch(self, x: np.ndarray, y: np.ndarray | None, rng: np.random.Generator,
                       params: dict) -> tuple[np.ndarray, np.ndarray]:
        """Per-batch transform of sampled patches into (network input, loss target); e.g. StarDist's
        distance targets. Applied to training and (once, fixed) validation batches."""
        return x, y

    def loss(self, params: dict) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    def finalize(self, predict_batches: Callable, val_batches: list, params: dict,
                 val_images: Callable[[], list[tuple[np.ndarray, np.ndarray]]] | None = None) -> dict:
        """Settings chosen after training on the validation data (e.g. a threshold); stored in model.yaml.
        `predict_batches(list of input batches)` runs the trained predictor; `val_batches` are the strategy's
        fixed validation batches ({"source", "target"}); `val_images()` gives the whole prepared validation regions as (input, target) pairs, for settings
        that patches would bias (StarDist's thresholds)."""
        return {}

    def initial_config(self, params: dict) -> dict:
        """Entries of model.yaml that training starts with (e.g. the starting threshold)."""
        return {}

    def report_items(self, config: dict) -> list[tuple[str, object]]:
        """Lines of the training report that only this network has (e.g. thresholds chosen on validation)."""
        return [("probability threshold (validation)", config["threshold"])] if "threshold" in config else []

    # --- export ----------------------------------------------------------------------------------
    def export_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """The graph a bioimage.io bundle runs (before the in-graph sigmoid an `ExportSpec` may ask for)."""
        return module

    def export_spec(self, config: dict):
        """What the bioimage.io bundle needs (`export.spec.ExportSpec`), or None if it cannot be exported."""
        return None

    # --- prediction ------------------------------------------------------------------------------
    def predict_raw(self, run: Callable, image: np.ndarray, tile, geometry: Geometry, config: dict):
        """The raw output `outputs` turns into results, for one normalised channels-first image: the tiled
        prediction stitched whole by default. A network whose raw output would not fit in memory keeps
        only what it needs of each tile (`tiling.iter_tiles`)."""
        from ..tiling import predict_tiled

        return predict_tiled(run, image, tile, geometry.halo, geometry.multiple, geometry.out_scale)

    def outputs(self, raw_output: np.ndarray, image: np.ndarray, normalizer: Normalizer,
                source_range: tuple, config: dict) -> Outputs:
        """Turn the network's raw output for one image (channels first) into the user-facing arrays."""
        raise NotImplementedError

    def output_keys(self, config: dict) -> list[str]:
        """The keys `outputs` returns, in file order, so predict can refuse to overwrite before it starts."""
        raise NotImplementedError
