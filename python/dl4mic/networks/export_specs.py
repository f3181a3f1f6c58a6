"""What each network's bioimage.io / DeepImageJ bundle needs: output tensor, in-graph head, processing.

Every network that can be exported declares an `ExportSpec` here (keyed by its spec name), so the
generic exporter in `dl4mic.export` never branches on network names. Processing ops are limited to
those DeepImageJ runs (binarize, clip, scale_linear, scale_range, sigmoid, zero_mean_unit_variance,
fixed_zero_mean_unit_variance), one op per tensor (DeepImageJ's test harness applies only the first).
Networks with special needs (StarDist's `config.stardist`) add them through `extra_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import UserError
from .unet_seg import mask_threshold

DIJ_OPS = ("binarize", "clip", "scale_linear", "scale_range", "sigmoid", "zero_mean_unit_variance",
           "fixed_zero_mean_unit_variance")


@dataclass(frozen=True)
class ExportSpec:
    output_id: str                     # tensor id of the single output (DeepImageJ names its image after it)
    output_description: str
    sigmoid: bool = False              # apply a sigmoid inside the exported graph (pointwise: tiling-safe)
    postprocessing: list = field(default_factory=list)  # [(op id, kwargs)] on the output, DIJ ops only
    units_note: str = ""               # README sentence on the output's units
    extra_config: dict = field(default_factory=dict)     # extra `config` entries (e.g. config.stardist)


def _restoration(config: dict) -> ExportSpec:
    target = (config.get("normalization") or {}).get("target") or {"method": "source"}
    if target.get("method") == "fixed":
        lo, hi = float(target["low"]), float(target["high"])
        gain = max(hi - lo, 1e-6)
        return ExportSpec(
            output_id="restored",
            output_description="Restored image in the intensity units of the training targets.",
            postprocessing=[("scale_linear", {"gain": gain, "offset": lo})],
            units_note=(f"The output is in the intensity units of the training targets: the network's "
                        f"normalised output y is mapped back with `scale_linear` (y * {gain:.6g} + {lo:.6g}), "
                        f"the fixed range of the training targets."))
    return ExportSpec(
        output_id="restored",
        output_description="Restored image in normalised units (0 and 1: the input's low and high percentiles).",
        units_note=("The output is in **normalised units** (0 = the input image's low percentile, 1 = its high "
                    "percentile). The model was trained with targets scaled by each *input's* percentiles, whose "
                    "inverse is not a processing step DeepImageJ (or the bioimage.io spec) supports; to get raw "
                    "intensities multiply the output by (p_high - p_low) of the input and add p_low. "
                    "`dl4mic predict BUNDLE.zip` does this for you."))


def _unet2d(config: dict) -> ExportSpec:
    threshold = mask_threshold(config)
    source = "QC" if "qc_threshold" in config else "validation"
    return ExportSpec(
        output_id="mask",
        output_description=f"Binary mask (1 = foreground): the probability binarised at {threshold:g}.",
        sigmoid=True,
        postprocessing=[("binarize", {"threshold": threshold})],
        units_note=(f"The network ends in a sigmoid (foreground probability); the bundle's single "
                    f"post-processing step `binarize` turns it into a 0/1 mask at threshold {threshold:g} "
                    f"(the best IoU on the {source} images). `dl4mic predict BUNDLE.zip` also writes the "
                    f"probability map and labelled objects."))


EXPORT_SPECS: dict[str, Callable[[dict], ExportSpec]] = {
    "care2d": _restoration, "n2v2d": _restoration, "unet2d": _unet2d}


def export_spec(config: dict) -> ExportSpec:
    """The export needs of the network recorded in a model.yaml `config`."""
    name = config.get("network")
    if name not in EXPORT_SPECS:
        raise UserError(f"Export of {name} models to bioimage.io is not available yet in this dl4mic version; "
                        f"exportable networks: {', '.join(sorted(EXPORT_SPECS))}.")
    spec = EXPORT_SPECS[name](config)
    for op, _ in spec.postprocessing:
        assert op in DIJ_OPS, op
    return spec
