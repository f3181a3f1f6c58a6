"""Loading a model folder (or a bundle) and predicting one image: the object predict and QC use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..data.io import channels_first
from ..data.normalize import Normalizer
from ..errors import UserError
from ..specs import load_spec
from .tiling import predict_tiled

DEFAULT_TILE = 1024


def read_model_config(model_dir: Path) -> dict:
    path = Path(model_dir) / "model.yaml"
    if not path.is_file():
        raise UserError(f"{model_dir} is not a dl4mic model folder (no model.yaml); give the folder `dl4mic train` wrote.")
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def pick_device(device: str | None = None):
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class LoadedModel:
    """A trained model ready to predict 2D images in the units users see (normalisation inverted)."""

    def __init__(self, model_dir: Path, weights: str = "best", device: str | None = None):
        import torch

        from ..networks import get_network

        self.dir = Path(model_dir)
        self.config = read_model_config(self.dir)
        self.network = get_network(self.config["network"])
        self.spec = load_spec(self.config["network"])
        self.task = self.spec.task
        self.params = self.config["parameters"]
        self.normalizer = Normalizer(self.config["normalization"])
        self.device = pick_device(device)
        path = self.dir / "weights" / f"{weights}.pt"
        if not path.is_file():
            raise UserError(f"{path} is missing; the model folder is incomplete (train it again or use --resume).")
        self.module = self.network.build(self.params)
        self.module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.module.to(self.device).eval()

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(np.ascontiguousarray(x)).to(self.device)).float().cpu().numpy()

    def predict(self, image: np.ndarray, tile: int | None = DEFAULT_TILE) -> dict[str, np.ndarray]:
        """Outputs for one 2D image: `restored` (restoration) or `probability`/`mask`/`labels` (segmentation).
        Multichannel models take (Y, X, C) or (C, Y, X) images and return channels-first outputs."""
        image = np.asarray(image)
        channels = int(self.params.get("n_channels", 1))
        if channels > 1 and image.ndim == 3:
            image = channels_first(image)
            if image.shape[0] != channels:
                raise UserError(f"This {self.spec.name} model was trained on {channels}-channel images, not "
                                f"{image.shape[0]}; give images with the training channels.")
        elif channels > 1:
            raise UserError(f"This {self.spec.name} model was trained on {channels}-channel images, not one of shape "
                            f"{image.shape}; give images with the training channels.")
        elif image.ndim != 2:
            raise UserError(f"{self.spec.name} predicts 2D single-channel images, not shape {image.shape}; "
                            f"save one plane per file.")
        source_range = self.normalizer.source_range(image)
        from ..data.normalize import scale

        x = scale(image, *source_range)
        raw = predict_tiled(self._run, x, tile, self.network.halo(self.params), self.network.multiple(self.params))
        return self.network.outputs(raw, image, self.normalizer, source_range, self.config)


def load_model(path: str | Path, weights: str = "best", device: str | None = None) -> LoadedModel:
    """A model folder, or a dl4mic bioimage.io bundle zip (extracted safely beside a cache)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".zip":
        from ..export.bundle import model_dir_from_bundle

        path = model_dir_from_bundle(path)
    return LoadedModel(path, weights=weights, device=device)
