"""The U-Net backbone shared by CARE, U-Net segmentation and later networks."""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, kernel: int, batch_norm: bool) -> nn.Sequential:
    layers = []
    for c in (cin, cout):
        layers.append(nn.Conv2d(c, cout, kernel, padding=kernel // 2, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net (Ronneberger 2015) as CSBDeep builds it: two convolutions per level, max-pool down,
    nearest up-sampling and concatenation up, 1x1 output; `residual` adds the input (CARE)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 2, filters: int = 32,
                 kernel_size: int = 3, batch_norm: bool = False, residual: bool = False):
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError("a residual U-Net needs as many output as input channels")
        self.depth, self.residual = depth, residual
        self.down = nn.ModuleList()
        c, widths = in_channels, []
        for level in range(depth):
            w = filters * 2 ** level
            self.down.append(_block(c, w, kernel_size, batch_norm))
            widths.append(w)
            c = w
        self.bottom = _block(c, filters * 2 ** depth, kernel_size, batch_norm)
        c = filters * 2 ** depth
        self.up = nn.ModuleList()
        for level in reversed(range(depth)):
            self.up.append(_block(c + widths[level], widths[level], kernel_size, batch_norm))
            c = widths[level]
        self.head = nn.Conv2d(c, out_channels, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, h = [], x
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for block in self.up:
            h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1))
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
