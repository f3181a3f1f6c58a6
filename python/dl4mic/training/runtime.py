"""Where training runs: one device now, DDP ranks later. Only the main rank writes files."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch


def bf16_fast(device: torch.device) -> bool:
    """Whether bfloat16 autocast is fast here: CUDA with bf16, or a CPU with AVX-512-BF16/AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Runtime:
    """The device, the arithmetic and this process's rank; strategies and the loop go through it."""

    device: torch.device
    precision: str = "float32"   # float32 | bfloat16 (autocast)
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.precision == "bfloat16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    channels_last_3d: bool = True  # set by `prepare_module`

    def tensor(self, a: np.ndarray) -> torch.Tensor:
        """A batch on the device, channels-last where that is faster (see `prepare_module`)."""
        t = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        if t.ndim == 4:
            return t.contiguous(memory_format=torch.channels_last)
        if t.ndim == 5 and self.channels_last_3d:
            return t.contiguous(memory_format=torch.channels_last_3d)
        return t.contiguous()

    def prepare_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """On the device, channels-last: 2D always; 3D only without batch norm, whose CPU kernel runs slower
        channels-last (on 2 AVX2 cores: a CARE 3D step took 15-20% less time, but BatchNorm3d was 4x
        slower channels-last)."""
        module = module.to(self.device)
        if not any(isinstance(m, torch.nn.Conv3d) for m in module.modules()):
            return module.to(memory_format=torch.channels_last)
        self.channels_last_3d = not any(isinstance(m, torch.nn.BatchNorm3d) for m in module.modules())
        return module.to(memory_format=torch.channels_last_3d) if self.channels_last_3d else module
