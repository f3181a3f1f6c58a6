"""The U-Net backbone shared by CARE, U-Net segmentation and later networks, in 2D and 3D.

`dims` (2 or 3) picks the convolution family; `pool` gives the down-sampling factor per spatial axis
(e.g. (1, 2, 2) pools a ZYX stack in Y and X only, for anisotropic data)."""

from __future__ import annotations

import torch
from torch import nn

CONV = {2: nn.Conv2d, 3: nn.Conv3d}
BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}


def _block(cin: int, mid: int, cout: int, kernel: int, batch_norm: bool, dims: int = 2) -> nn.Sequential:
    """Two convolutions (cin -> mid -> cout), each with ReLU (and batch norm)."""
    layers = []
    for a, b in ((cin, mid), (mid, cout)):
        layers.append(CONV[dims](a, b, kernel, padding=kernel // 2, bias=not batch_norm))
        if batch_norm:
            layers.append(BATCH_NORM[dims](b))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases (Keras' defaults, as CSBDeep trains): a residual CARE
    network then starts close to the identity instead of adding torch's random bias offset."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def torch_init(module: nn.Module) -> None:
    """PyTorch's default initialisation of every convolution (undoes `keras_init`)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            m.reset_parameters()


class MaxBlurPool(nn.Module):
    """Anti-aliased down-sampling (Zhang, ICML 2019) as N2V2 uses it: a max-pool of the pooling size with
    stride 1, then a normalised binomial blur ([1, 2, 1] along each pooled axis) with the pooling stride
    (per channel). Halves even sides like a max-pool of factor 2; axes with factor 1 are left alone."""

    def __init__(self, pool: tuple[int, ...] = (2, 2)):
        super().__init__()
        self.pool = tuple(int(p) for p in pool)
        kernel = torch.ones(())
        for p in self.pool:
            k = torch.tensor([1.0, 2.0, 1.0]) / 4.0 if p > 1 else torch.ones(1)
            kernel = kernel[..., None] * k
        self.register_buffer("kernel", kernel[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = len(self.pool)
        pad = tuple(1 if p > 1 else 0 for p in self.pool)
        if dims == 2:
            x = nn.functional.max_pool2d(x, kernel_size=self.pool, stride=1)
            b, c, h, w = x.shape  # every channel blurred alike: one 1-channel convolution (static kernel for ONNX)
            y = nn.functional.conv2d(x.reshape(b * c, 1, h, w), self.kernel.to(x.dtype), stride=self.pool,
                                     padding=pad)
        else:
            x = nn.functional.max_pool3d(x, kernel_size=self.pool, stride=1)
            b, c, d, h, w = x.shape
            y = nn.functional.conv3d(x.reshape(b * c, 1, d, h, w), self.kernel.to(x.dtype), stride=self.pool,
                                     padding=pad)
        return y.reshape((b, c) + tuple(y.shape[2:]))


class UNet(nn.Module):
    """U-Net (Ronneberger 2015) exactly as CSBDeep builds it: two convolutions per level, max-pool down,
    nearest up-sampling and concatenation up, where the last convolution of the bottom and of each up
    level halves the width; then a 1x1 output (none when `out_channels` is None: the features, of
    `out_width` channels, for networks with their own heads); `residual` adds the input (CARE).

    N2V2 (Hoeck et al. 2022) options: `blur_pool` replaces max-pooling by max-blur-pooling, and
    `top_skip=False` drops the skip connection of the top (full-resolution) level; `upsample="bilinear"`
    up-samples bilinearly (without the top skip, nearest up-sampling leaves a 2-pixel period in outputs).

    `channelwise=True` (with one input and one output channel) applies the network to every channel of
    a multichannel input alike, as separate batch items: channels processed independently, shared weights.

    `dims=3` builds the same network from 3D convolutions; `pool` is the down-sampling factor per spatial
    axis (default 2 along every axis)."""

    def __init__(self, in_channels: int = 1, out_channels: int | None = 1, depth: int = 2, filters: int = 32,
                 kernel_size: int = 3, batch_norm: bool = False, residual: bool = False,
                 blur_pool: bool = False, top_skip: bool = True, upsample: str = "nearest",
                 channelwise: bool = False, dims: int = 2, pool: tuple | None = None):
        super().__init__()
        if dims not in CONV:
            raise ValueError(f"dims must be 2 or 3, not {dims}")
        pool = tuple(int(p) for p in (pool or (2,) * dims))
        if len(pool) != dims:
            raise ValueError(f"pool {pool} needs one factor per spatial axis ({dims})")
        self.dims, self.pool_factors = dims, pool
        if channelwise and (in_channels != 1 or out_channels != 1):
            raise ValueError("a channelwise U-Net has one input and one output channel")
        self.channelwise = channelwise
        if residual and in_channels != out_channels:
            raise ValueError("a residual U-Net needs as many output as input channels")
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be nearest or bilinear, not {upsample!r}")
        self.interpolation = upsample if upsample == "nearest" else ("bilinear" if dims == 2 else "trilinear")
        self.depth, self.residual, self.top_skip, self.upsample = depth, residual, top_skip, upsample
        self.down = nn.ModuleList()
        c, widths = in_channels, []
        for level in range(depth):
            w = filters * 2 ** level
            self.down.append(_block(c, w, w, kernel_size, batch_norm, dims))
            widths.append(w)
            c = w
        half = filters * 2 ** max(0, depth - 1)
        self.bottom = _block(c, filters * 2 ** depth, half, kernel_size, batch_norm, dims)
        c = half
        self.up = nn.ModuleList()
        for level in reversed(range(depth)):
            skip = widths[level] if (level > 0 or top_skip) else 0
            out = filters * 2 ** max(0, level - 1)
            self.up.append(_block(c + skip, widths[level], out, kernel_size, batch_norm, dims))
            c = out
        self.out_width = c
        self.head = CONV[dims](c, out_channels, 1) if out_channels else None
        self.pool = MaxBlurPool(pool) if blur_pool else MAX_POOL[dims](pool)
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channelwise:
            b, c = x.shape[:2]
            spatial = tuple(x.shape[2:])
            return self._forward(x.reshape((b * c, 1) + spatial)).reshape((b, c) + spatial)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, h = [], x
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for block in self.up:
            h = nn.functional.interpolate(h, scale_factor=tuple(float(p) for p in self.pool_factors),
                                          mode=self.interpolation)
            skip = skips.pop()
            h = block(torch.cat([h, skip], dim=1) if (skips or self.top_skip) else h)
        if self.head is None:
            return h
        out = self.head(h)
        return out + x if self.residual else out


def receptive_halo(depth: int, kernel_size: int, pool: int = 2) -> int:
    """Pixels of context each side that influence an output pixel (the tiling halo) along an axis pooled by
    `pool` at each level, rounded up to that axis's size multiple pool**depth."""
    r, scale = 0, 1
    k = 2 * (kernel_size // 2)
    for _ in range(depth):
        r += k * scale
        scale *= pool
    r += k * scale  # bottom block
    for _ in range(depth):
        scale //= pool
        r += k * scale
    m = pool ** depth
    r += m - 1  # max-pooling offsets
    return int(-(-r // m) * m)
