"""Noise2Void 2D (Krull et al., CVPR 2019) and N2V2 (Hoeck et al., ECCV workshops 2022): denoising from
the noisy images alone.

A blind-spot network: in every training patch a small, stratified fraction of pixels is masked (replaced
by a random neighbour, or for N2V2 by the median of the neighbourhood without the pixel itself) and the
loss is the squared error on those pixels only, against their original noisy values. As pixel noise is
independent and the signal is not, the best the network can do is predict the signal. N2V2 adds
max-blur-pool down-sampling and drops the top skip connection, which removes N2V's checkerboard artefacts;
dl4mic's N2V2 also up-samples bilinearly (as CAREamics' U-Net): without the top skip, nearest up-sampling
leaves a 2-pixel period in the outputs.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.io import channels_first
from ..data.normalize import scale, unscale
from .base import Network
from .unet import UNet, receptive_halo


def stratified_coords(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (rows, cols) to mask in one (h, w) patch: one uniformly placed pixel in every cell
    of a grid of side sqrt(1 / fraction), cells cut by the patch border kept only when their pixel falls in
    it (so the expected density is `fraction` everywhere, as in N2V)."""
    h, w = shape
    side = float(np.sqrt(1.0 / fraction))
    gy, gx = np.meshgrid(np.arange(int(np.ceil(h / side))) * side, np.arange(int(np.ceil(w / side))) * side,
                         indexing="ij")
    ys = np.floor(gy.ravel() + rng.random(gy.size) * side).astype(np.int64)
    xs = np.floor(gx.ravel() + rng.random(gx.size) * side).astype(np.int64)
    keep = (ys < h) & (xs < w)
    return ys[keep], xs[keep]


def _neighbour_offsets(radius: int) -> np.ndarray:
    """All (dy, dx) in the (2r+1)^2 square except (0, 0)."""
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    keep = (dy != 0) | (dx != 0)
    return np.stack([dy[keep], dx[keep]], axis=1)


def blind_spot_mask(x: np.ndarray, fraction: float, radius: int, strategy: str,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mask a batch (B, C, H, W) for blind-spot training; returns (masked input, mask of the masked pixels).

    Every image plane (sample and channel) gets its own stratified pixels. `strategy` "uniform" replaces a
    pixel by a random neighbour within `radius` (never itself; an offset that leaves the patch is mirrored),
    "median" by the median of its neighbourhood without itself, cut at the patch border (N2V2)."""
    x = np.asarray(x, dtype=np.float32)
    b, c, h, w = x.shape
    if min(h, w) <= 2 * radius:
        raise ValueError(f"patches of {h}x{w} pixels are too small for a neighbourhood radius of {radius}")
    out, mask = x.copy(), np.zeros(x.shape, dtype=np.float32)
    offsets = _neighbour_offsets(radius)
    padded = np.pad(x, [(0, 0), (0, 0), (radius, radius), (radius, radius)], constant_values=np.nan) \
        if strategy == "median" else None
    for i in range(b):
        for ch in range(c):
            ys, xs = stratified_coords((h, w), fraction, rng)
            if ys.size == 0:
                continue
            if strategy == "median":
                vals = padded[i, ch][ys[:, None] + radius + offsets[None, :, 0],
                                     xs[:, None] + radius + offsets[None, :, 1]]
                values = np.nanmedian(vals, axis=1)
            else:
                pick = offsets[rng.integers(len(offsets), size=ys.size)]
                ty, tx = ys + pick[:, 0], xs + pick[:, 1]
                ty = np.where((ty < 0) | (ty >= h), ys - pick[:, 0], ty)
                tx = np.where((tx < 0) | (tx >= w), xs - pick[:, 1], tx)
                values = x[i, ch, ty, tx]
            out[i, ch, ys, xs] = values
            mask[i, ch, ys, xs] = 1.0
    return out, mask


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error on the masked pixels only; `target` stacks [original (C), mask (C)] on the channels."""
    c = pred.shape[1]
    original, mask = target[:, :c], target[:, c:]
    return ((pred - original) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)


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
                      upsample="bilinear" if n2v2 else "nearest", channelwise=channels > width)
        # PyTorch's default initialisation (as CAREamics), not the backbone's Keras/Glorot one: with the few
        # masked pixels per patch, Glorot's larger output layer makes N2V converge several times more slowly
        # (BSD400, 4 x 20 x 32 patches: validation loss 0.041 against 0.017).
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.reset_parameters()
        return module

    def halo(self, params):
        halo = receptive_halo(int(params["depth"]), int(params["kernel_size"]))
        if self._n2v2(params):  # per level, max-blur-pool reaches 1 + 2 and bilinear up-sampling 2 pixels further
            m = 2 ** int(params["depth"])
            halo += -(-(5 * (m - 1)) // m) * m
        return halo

    def prepare(self, normalizer, params):
        def prepare(source, target):
            source = channels_first(source)
            return scale(source, *normalizer.source_range(source)), None

        return prepare

    def training_batch(self, x, y, rng, params):
        strategy = "median" if self._n2v2(params) else "uniform"
        masked, mask = blind_spot_mask(x, float(params["masked_pixel_percentage"]) / 100.0,
                                       int(params["neighborhood_radius"]), strategy, rng)
        return masked, np.concatenate([np.asarray(x, np.float32), mask], axis=1)

    def loss(self, params):
        return masked_mse

    def outputs(self, raw_output, image, normalizer, source_range, config):
        restored = raw_output if int(config["parameters"].get("n_channels", 1)) > 1 else raw_output[0]
        return {"restored": unscale(restored, *normalizer.target_range(source_range))}
