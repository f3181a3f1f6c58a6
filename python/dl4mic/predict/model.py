"""Loading a model folder (or a bundle) and predicting one image: the object predict and QC use.

Images come with their axes (from the file's metadata, the model's training axes, or the stated rule);
a 2D model predicts the planes of a ZYX or TYX stack one by one, a 3D model refuses 2D images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.io import channels_first, infer_axes
from ..data.normalize import scale
from ..errors import UserError
from ..model_folder import ModelFolder, read_model_config
from ..networks.base import Outputs
from ..specs import load_spec

from ..tiling import DEFAULT_TILE

__all__ = ["DEFAULT_TILE", "LoadedModel", "load_model", "read_model_config"]


class LoadedModel:
    """A trained model ready to predict images in the units users see (normalisation inverted)."""

    def __init__(self, model_dir: Path, weights: str = "best", device: str | None = None):
        import torch

        from ..networks import get_network
        from ..training.runtime import pick_device

        self.dir = Path(model_dir)
        self.config = read_model_config(self.dir)
        self.network = get_network(self.config["network"])
        self.spec = load_spec(self.config["network"])
        self.task = self.network.qc_task()
        self.params = self.config["parameters"]
        self.normalizer = self.network.normalizer(self.config)
        self.geometry = self.network.geometry(self.params, self.config.get("spacing"))
        self.notes: list[str] = []
        self.device = pick_device(device)
        self.module = self.network.build(self.params)
        path = self.dir / "weights" / f"{weights}.pt"
        state = ModelFolder(self.dir).load_weights(path)
        try:
            self.module.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise UserError(f"{path} does not fit the {self.config['network']} network that model.yaml describes "
                            f"({str(exc).splitlines()[0][:120]}); restore the model folder from a backup or train "
                            f"it again.") from None
        self.module.to(self.device).eval()

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(np.ascontiguousarray(x)).to(self.device)).float().cpu().numpy()

    def image_axes(self, image: np.ndarray, axes: str | None = None) -> str:
        """The axes of an array: given, else the training axes when the rank fits, else the stated rule."""
        if axes:
            return infer_axes(image.shape, axes)
        trained = self.config.get("axes") or self.geometry.axes
        if len(trained) != image.ndim:
            return infer_axes(image.shape)
        channels = int(self.params.get("n_channels", 1))
        if "C" in trained and image.shape[trained.index("C")] != channels:  # e.g. YXC training, CYX array
            return infer_axes(image.shape)
        return trained

    def predict(self, image: np.ndarray, tile="auto", axes: str | None = None) -> Outputs:
        """Outputs for one image (`Outputs`: arrays with axes, and tables). Multichannel models take
        channels-last or channels-first images and return channels-first outputs. `tile`: pixels per
        spatial axis of a tile (one number or one per axis; "auto": the network's default; None or 0: the whole
        image in one pass)."""
        image = np.asarray(image)
        ax = self.image_axes(image, axes)
        x = channels_first(image, ax)
        spatial = "".join(a for a in ax if a != "C")
        channels = int(self.params.get("n_channels", 1))
        have = x.shape[0] if "C" in ax else 1
        if have != channels:
            raise UserError(f"This {self.spec.name} model was trained on {channels}-channel images, not {have} "
                            f"(shape {image.shape}, axes {ax}); give images with the training channels.")
        want = self.geometry.axes
        if spatial == want:
            return self._predict_one(x, tile)
        if len(spatial) > len(want) and spatial.endswith(want):
            lead = spatial[: len(spatial) - len(want)]
            if len(lead) == 1:
                return self._predict_planes(x, lead, "C" in ax, tile)
        if len(spatial) < len(want):
            raise UserError(f"{self.spec.name} is a {len(want)}D network ({want}); this image has axes {ax} of "
                            f"shape {image.shape}: give {want} stacks (set the axes with --axes if they are wrong).")
        raise UserError(f"{self.spec.name} predicts {want} images, not axes {ax} of shape {image.shape}; "
                        f"save one {want} image per file or set the axes with --axes.")

    def _predict_one(self, x: np.ndarray, tile) -> Outputs:
        source_range = self.normalizer.source_range(x)
        tiles = DEFAULT_TILE[self.geometry.ndim] if tile == "auto" else (tile or None)
        raw = self.network.predict_raw(self._run, scale(x, *source_range), tiles, self.geometry, self.config)
        return self.network.outputs(raw, x, self.normalizer, source_range, self.config)

    def _predict_planes(self, x: np.ndarray, lead: str, has_channels: bool, tile) -> Outputs:
        """A lower-dimensional model over a stack: plane by plane along `lead` (Z or T), results stacked
        along it; table rows get a `frame` (T) or `z` (Z) column."""
        n = x.shape[1] if has_channels else x.shape[0]
        what = "frame" if lead == "T" else "plane"
        self.notes.append(f"{self.spec.name} is a {self.geometry.ndim}D network: the {n} {what}s along {lead} "
                          f"are predicted one by one.")
        parts = [self._predict_one(x[:, i] if has_channels else x[i], tile) for i in range(n)]
        column = "frame" if lead == "T" else "z"
        images = {}
        for key, (_, axes) in parts[0].images.items():
            stacked = np.stack([p.images[key][0] for p in parts], axis=1 if axes.startswith("C") else 0)
            images[key] = (stacked, ("C" + lead + axes[1:]) if axes.startswith("C") else lead + axes)
        tables = {key: [{column: i, **row} for i, p in enumerate(parts) for row in p.tables[key]]
                  for key in parts[0].tables}
        return Outputs(images, tables)


def load_model(path: str | Path, weights: str = "best", device: str | None = None) -> LoadedModel:
    """A model folder, or a dl4mic bioimage.io bundle zip (extracted safely beside a cache)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".zip":
        from ..export.package import model_dir_from_bundle

        path = model_dir_from_bundle(path)
    return LoadedModel(path, weights=weights, device=device)
