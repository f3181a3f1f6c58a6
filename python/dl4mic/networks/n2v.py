"""Noise2Void (Krull et al., CVPR 2019) and N2V2 (Hoeck et al., ECCV workshops 2022) in 2D and 3D:
denoising from the noisy images alone.

A blind-spot network trained by the `SelfSupervised` strategy (`training.blind_spot` masks the pixels;
in 3D the blind spot and its neighbourhood are cubes). As pixel noise is independent and the signal is
not, the best the network can do is predict the signal. N2V2 adds
max-blur-pool down-sampling and drops the top skip connection, which removes N2V's checkerboard artefacts;
dl4mic's N2V2 also up-samples bilinearly (as CAREamics' U-Net): without the top skip, nearest up-sampling
leaves a 2-pixel period in the outputs.
"""

from __future__ import annotations

from ..data.normalize import scale
from ..errors import UserError
from ..training.blind_spot import masked_mse
from .base import Network
from .care import restored_output
from .unet import UNet, torch_init


class N2V2D(Network):
    name = "n2v2d"
    target_normalization = "source"  # outputs in the units of each input image (no targets exist)

    def _n2v2(self, params) -> bool:
        return params.get("variant", "n2v") == "n2v2"

    def build(self, params):
        n2v2 = self._n2v2(params)
        channels = int(params.get("n_channels", 1))
        width = channels if params.get("channels", "independent") == "together" else 1
        module = UNet(width, width, depth=params["depth"], filters=params["filters"], kernel_size=params["kernel_size"],
                      batch_norm=params["batch_norm"], residual=False, blur_pool=n2v2, top_skip=not n2v2,
                      upsample="bilinear" if n2v2 else "nearest", channelwise=channels > width, dims=self.dims,
                      pool=self.pool(params))
        # PyTorch's default initialisation (as CAREamics), not the backbone's Keras/Glorot one: with the few
        # masked pixels per patch, Glorot's larger output layer makes N2V converge several times more slowly
        # (BSD400, 4 x 20 x 32 patches: validation loss 0.041 against 0.017).
        torch_init(module)
        return module

    def halo(self, params):
        halo = super().halo(params)
        if self._n2v2(params):  # per level, max-blur-pool reaches 1 + 2 and bilinear up-sampling 2 pixels further
            out = []
            for h, p in zip(halo, self.pool(params)):
                m = p ** int(params["depth"])
                out.append(h + (-(-(5 * (m - 1)) // m) * m if m > 1 else 0))
            halo = tuple(out)
        return halo

    def check_geometry(self, params, geometry):
        super().check_geometry(params, geometry)
        r = int(params["neighborhood_radius"])
        small = [(a, n) for a, n in zip(geometry.axes, geometry.patch) if n <= 2 * r]
        if small:
            a, n = small[0]
            raise UserError(f"The patch is {n} pixels along {a}, too small for the blind-spot neighbourhood of radius "
                            f"{r} (2 x {r} + 1 = {2 * r + 1} pixels); use --param neighborhood_radius={max(1, (n - 1) // 2)} "
                            f"or a patch of at least {2 * r + 2} along {a}.")

    def strategy(self, params):
        from ..training.strategies import SelfSupervised

        return SelfSupervised(self, params)

    def prepare(self, normalizer, params):
        def prepare(source, target):
            return scale(source, *normalizer.source_range(source)), None

        return prepare

    def loss(self, params):
        return masked_mse

    def outputs(self, raw_output, image, normalizer, source_range, config):
        return restored_output(self, raw_output, normalizer, source_range, config)

    def output_keys(self, config):
        return ["restored"]

    def export_spec(self, config):
        from .export_specs import restoration_export

        return restoration_export(config)


class N2V3D(N2V2D):
    name = "n2v3d"
    dims = 3
