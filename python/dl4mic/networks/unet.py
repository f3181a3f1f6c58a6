"""The U-Net backbone shared by CARE, U-Net segmentation and later networks."""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, mid: int, cout: int, kernel: int, batch_norm: bool) -> nn.Sequential:
    """Two convolutions (cin -> mid -> cout), each with ReLU (and batch norm)."""
    layers = []
    for a, b in ((cin, mid), (mid, cout)):
        layers.append(nn.Conv2d(a, b, kernel, padding=kernel // 2, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(b))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases (Keras' defaults, as CSBDeep trains): a residual CARE
    network then starts close to the identity instead of adding torch's random bias offset."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class MaxBlurPool(nn.Module):
    """Anti-aliased down-sampling (Zhang, ICML 2019) as N2V2 uses it: a 2x2 max-pool with stride 1, then
    a normalised 3x3 binomial blur with stride 2 (per channel). Halves even sides like `MaxPool2d(2)`."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16.0)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(x, kernel_size=2, stride=1)
        b, c, h, w = x.shape  # every channel blurred alike: one 1-channel convolution (static kernel for ONNX)
        y = nn.functional.conv2d(x.reshape(b * c, 1, h, w), self.kernel.to(x.dtype), stride=2, padding=1)
        return y.reshape(b, c, y.shape[-2], y.shape[-1])


class UNet(nn.Module):
    """U-Net (Ronneberger 2015) exactly as CSBDeep builds it: two convolutions per level, max-pool down,
    nearest up-sampling and concatenation up, where the last convolution of the bottom and of each up
    level halves the width; then a 1x1 output (none when `out_channels` is None: the features, of
    `out_width` channels, for networks with their own heads); `residual` adds the input (CARE).

    N2V2 (Hoeck et al. 2022) options: `blur_pool` replaces max-pooling by max-blur-pooling, and
    `top_skip=False` drops the skip connection of the top (full-resolution) level; `upsample="bilinear"`
    up-samples bilinearly (without the top skip, nearest up-sampling leaves a 2-pixel period in outputs).

    `channelwise=True` (with one input and one output channel) applies the network to every channel of
    a multichannel input alike, as separate batch items: channels processed independently, shared weights."""

    def __init__(self, in_channels: int = 1, out_channels: int | None = 1, depth: int = 2, filters: int = 32,
                 kernel_size: int = 3, batch_norm: bool = False, residual: bool = False,
                 blur_pool: bool = False, top_skip: bool = True, upsample: str = "nearest",
                 channelwise: bool = False):
        super().__init__()
        if channelwise and (in_channels != 1 or out_channels != 1):
            raise ValueError("a channelwise U-Net has one input and one output channel")
        self.channelwise = channelwise
        if residual and in_channels != out_channels:
            raise ValueError("a residual U-Net needs as many output as input channels")
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be nearest or bilinear, not {upsample!r}")
        self.depth, self.residual, self.top_skip, self.upsample = depth, residual, top_skip, upsample
        self.down = nn.ModuleList()
        c, widths = in_channels, []
        for level in range(depth):
            w = filters * 2 ** level
            self.down.append(_block(c, w, w, kernel_size, batch_norm))
            widths.append(w)
            c = w
        half = filters * 2 ** max(0, depth - 1)
        self.bottom = _block(c, filters * 2 ** depth, half, kernel_size, batch_norm)
        c = half
        self.up = nn.ModuleList()
        for level in reversed(range(depth)):
            skip = widths[level] if (level > 0 or top_skip) else 0
            out = filters * 2 ** max(0, level - 1)
            self.up.append(_block(c + skip, widths[level], out, kernel_size, batch_norm))
            c = out
        self.out_width = c
        self.head = nn.Conv2d(c, out_channels, 1) if out_channels else None
        self.pool = MaxBlurPool() if blur_pool else nn.MaxPool2d(2)
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channelwise:
            b, c, height, width = x.shape
            return self._forward(x.reshape(b * c, 1, height, width)).reshape(b, c, height, width)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, h = [], x
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for block in self.up:
            h = nn.functional.interpolate(h, scale_factor=2, mode=self.upsample)
            skip = skips.pop()
            h = block(torch.cat([h, skip], dim=1) if (skips or self.top_skip) else h)
        if self.head is None:
            return h
        out = self.head(h)
        return out + x if self.residual else out


def receptive_halo(depth: int, kernel_size: int) -> int:
    """Pixels of context each side that influence an output pixel (the tiling halo), rounded up to 2**depth."""
    r, scale = 0, 1
    for _ in range(depth):
        r += 2 * (kernel_size // 2) * scale
        scale *= 2
    r += 2 * (kernel_size // 2) * scale  # bottom block
    for _ in range(depth):
        scale //= 2
        r += 2 * (kernel_size // 2) * scale
    r += 2 ** depth - 1  # max-pooling offsets
    m = 2 ** depth
    return int(-(-r // m) * m)
