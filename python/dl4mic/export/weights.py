"""The bundle's three weight formats from one trained module: state dict + architecture source,
TorchScript (traced) and ONNX (one file, opset 17, IR version 8: within DeepImageJ's ONNX engine), for
2D (B, C, Y, X) and 3D (B, C, Z, Y, X) networks."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import torch

from ..model_folder import write_torch

ONNX_OPSET = 17       # DeepImageJ / JDLL run ONNX opset <= 18
ONNX_IR_VERSION = 8   # and IR version <= 8 (onnxruntime 1.13 era)
ARCH_FILE = "dl4mic_network.py"

_UNET_WRAPPER = '''

class BundleUNet(UNet):
    """The dl4mic U-Net (2D or 3D) as exported to bioimage.io: optionally ends in a sigmoid (binary
    segmentation) or a softmax over the channels (multi-class segmentation), so the bundle's outputs need
    only processing steps DeepImageJ supports. Same state dict as `UNet`."""

    def __init__(self, sigmoid: bool = False, softmax: bool = False, **kwargs):
        super().__init__(**kwargs)
        if sigmoid and softmax:
            raise ValueError("a bundle U-Net ends in a sigmoid or a softmax, not both")
        self.sigmoid, self.softmax = sigmoid, softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        if self.softmax:
            return torch.softmax(y, dim=1)
        return torch.sigmoid(y) if self.sigmoid else y
'''


def architecture_source() -> str:
    """Self-contained Python source of every exportable architecture: the U-Net module, its bundle
    wrapper and the StarDist 2D module built on it (the rdf names the callable to use)."""
    from ..networks import stardist2d, unet

    stardist = "\n\n".join(inspect.getsource(obj) for obj in (stardist2d._conv, stardist2d.grid_pools,
                                                              stardist2d.StarDistModule))
    return inspect.getsource(unet) + _UNET_WRAPPER + "\n\n" + stardist


def unet_kwargs(module: torch.nn.Module, sigmoid: bool = False, softmax: bool = False) -> dict:
    """Constructor arguments of `BundleUNet` that rebuild `module` (a dl4mic `UNet`, 2D or 3D).

    `dims` and `pool` are given only where they differ from the 2D defaults (2, and 2 along every axis),
    and `softmax` only when set, so 2D bundles keep the kwargs they always had."""
    first = module.down[0][0] if len(module.down) else module.bottom[0]
    batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())
    dims = int(getattr(module, "dims", first.weight.ndim - 2))
    pool = tuple(int(p) for p in getattr(module, "pool_factors", (2,) * dims))
    kwargs = {"in_channels": int(first.in_channels), "out_channels": int(module.head.out_channels),
              "depth": int(module.depth), "filters": int(first.out_channels), "kernel_size": int(first.kernel_size[0]),
              "batch_norm": bool(batch_norm), "residual": bool(module.residual)}
    accepted = inspect.signature(type(module).__init__).parameters
    if "blur_pool" in accepted:  # N2V2 options of the shared U-Net
        kwargs["blur_pool"] = type(module.pool).__name__ == "MaxBlurPool"
    if "top_skip" in accepted:
        kwargs["top_skip"] = bool(getattr(module, "top_skip", True))
    if "upsample" in accepted:
        kwargs["upsample"] = str(getattr(module, "upsample", "nearest"))
    if "channelwise" in accepted:
        kwargs["channelwise"] = bool(getattr(module, "channelwise", False))
    if dims != 2 or pool != (2,) * dims:
        kwargs["dims"], kwargs["pool"] = dims, list(pool)
    kwargs["sigmoid"] = bool(sigmoid)
    if softmax:
        kwargs["softmax"] = True
    return kwargs


def bundle_callable(module: torch.nn.Module, sigmoid: bool = False, softmax: bool = False) -> tuple[str, dict]:
    """(class name in `architecture_source`, constructor kwargs) that rebuild the export graph `module`."""
    config = getattr(module, "config", None)
    if type(module).__name__ == "StarDistModule" and isinstance(config, dict):
        return "StarDistModule", {**config, "bundle_output": bool(module.bundle_output)}
    return "BundleUNet", unet_kwargs(module, sigmoid, softmax)


def build_bundle_module(module: torch.nn.Module, sigmoid: bool = False,
                        softmax: bool = False) -> tuple[torch.nn.Module, str, dict]:
    """A fresh copy of the export graph built from the shipped source (so the state dict is tested as users
    load it), with its callable name and kwargs for the rdf."""
    namespace: dict = {}
    exec(compile(architecture_source(), ARCH_FILE, "exec"), namespace)  # noqa: S102  our own source
    name, kwargs = bundle_callable(module, sigmoid, softmax)
    wrapped = namespace[name](**kwargs)
    wrapped.load_state_dict(module.state_dict())
    return wrapped.eval(), name, kwargs


def save_state_dict(module: torch.nn.Module, path: Path) -> None:
    write_torch({k: v.detach().cpu() for k, v in module.state_dict().items()}, path)


def save_torchscript(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
    write_torch(traced, path, save=torch.jit.save)


def dynamic_axes(ndim: int) -> dict[int, str]:
    """ONNX dynamic dimensions of a (B, C, Y, X) or (B, C, Z, Y, X) tensor: batch and every spatial axis."""
    if ndim not in (4, 5):
        raise ValueError(f"bundle tensors have 4 (BCYX) or 5 (BCZYX) dimensions, not {ndim}")
    return {0: "batch", **{i + 2: a for i, a in enumerate("zyx"[5 - ndim:])}}


def save_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path, input_id: str, output_id: str) -> None:
    """One self-contained .onnx file (no external data), dynamic batch and spatial axes (y, x or z, y, x)."""
    import onnx

    axes = dynamic_axes(example.ndim)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[input_id], output_names=[output_id], do_constant_folding=True,
                          dynamic_axes={input_id: dict(axes), output_id: dict(axes)})
    model = onnx.load(str(path))
    if model.ir_version > ONNX_IR_VERSION:  # newer exporters stamp a newer IR; opset 17 needs only IR 8
        model.ir_version = ONNX_IR_VERSION
        onnx.save(model, str(path))
    onnx.checker.check_model(model)
