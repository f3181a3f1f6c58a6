"""CARE (Weigert et al., Nat Methods 2018): a residual U-Net mapping low- to high-quality images, in 2D
and 3D (CSBDeep's 3D configuration: depth 2, 32 filters, kernel 3, residual, MAE)."""

from __future__ import annotations

import torch

from ..data.normalize import scale, unscale
from .base import Network, Outputs
from .unet import UNet


def restored_output(network: Network, raw_output, normalizer, source_range, config) -> Outputs:
    """A restoration's output in the units of the training targets, one channel without its C axis."""
    restored = raw_output if raw_output.shape[0] > 1 else raw_output[0]
    axes = ("C" if restored.ndim > network.dims else "") + network.spatial_axes
    return Outputs({"restored": (unscale(restored, *normalizer.target_range(source_range)), axes)})


class Care2D(Network):
    name = "care2d"
    target_normalization = "source"

    def build(self, params):
        return UNet(1, 1, depth=params["depth"], filters=params["filters"], kernel_size=params["kernel_size"],
                    batch_norm=params["batch_norm"], residual=True, dims=self.dims, pool=self.pool(params))

    def prepare(self, normalizer, params):
        def prepare(source, target):
            src_range = normalizer.source_range(source)
            y = scale(target, *normalizer.target_range(src_range)) if target is not None else None
            return scale(source, *src_range), y

        return prepare

    def loss(self, params):
        return torch.nn.L1Loss() if params["loss"] == "mae" else torch.nn.MSELoss()

    def outputs(self, raw_output, image, normalizer, source_range, config):
        return restored_output(self, raw_output, normalizer, source_range, config)

    def output_keys(self, config):
        return ["restored"]

    def export_spec(self, config):
        from .export_specs import restoration_export

        return restoration_export(config)


class Care3D(Care2D):
    name = "care3d"
    dims = 3
