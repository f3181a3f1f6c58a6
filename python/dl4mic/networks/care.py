"""CARE 2D (Weigert et al., Nat Methods 2018): a residual U-Net mapping low- to high-quality images."""

from __future__ import annotations

import torch

from ..data.normalize import scale, unscale
from .base import Network
from .unet import UNet


class Care2D(Network):
    name = "care2d"
    target_normalization = "source"

    def build(self, params):
        return UNet(1, 1, depth=params["depth"], filters=params["filters"], kernel_size=params["kernel_size"],
                    batch_norm=params["batch_norm"], residual=True)

    def prepare(self, normalizer, params):
        def prepare(source, target):
            src_range = normalizer.source_range(source)
            y = scale(target, *normalizer.target_range(src_range)) if target is not None else None
            return scale(source, *src_range), y

        return prepare

    def loss(self, params):
        return torch.nn.L1Loss() if params["loss"] == "mae" else torch.nn.MSELoss()

    def outputs(self, raw_output, image, normalizer, source_range, config):
        return {"restored": unscale(raw_output[0], *normalizer.target_range(source_range))}
