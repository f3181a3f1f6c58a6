"""What a network's bioimage.io / DeepImageJ bundle needs: output tensor, in-graph head, processing.

Every network that can be exported returns an `ExportSpec` from its `export_spec(config)` (the shared
builders for restoration and segmentation are here), so the generic exporter in `dl4mic.export` never
branches on network names. Processing ops are limited to
those DeepImageJ runs (binarize, clip, scale_linear, scale_range, sigmoid, zero_mean_unit_variance,
fixed_zero_mean_unit_variance), one op per tensor (DeepImageJ's test harness applies only the first).
Networks with special needs (StarDist's `config.stardist`) add them through `extra_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ..data.normalize import EPS, describe
from ..errors import UserError
from .unet_seg import mask_threshold, n_classes

DIJ_OPS = ("binarize", "clip", "scale_linear", "scale_range", "sigmoid", "zero_mean_unit_variance",
           "fixed_zero_mean_unit_variance")


@dataclass(frozen=True)
class ExportSpec:
    output_id: str                     # tensor id of the single output (DeepImageJ names its image after it)
    output_description: str
    sigmoid: bool = False              # apply a sigmoid inside the exported graph (pointwise: tiling-safe)
    softmax: bool = False              # apply a softmax over channels inside the exported graph
    postprocessing: list = field(default_factory=list)  # [(op id, kwargs)] on the output, DIJ ops only
    preprocessing: list = field(default_factory=list)   # [(op id, kwargs)] on the input (from the normalisation)
    units_note: str = ""               # README sentence on the output's units
    output_units: str = ""             # the units in one word or phrase (rdf config.dl4mic.output_units)
    loss: str = ""                     # training loss, in words (rdf config.bioimageio.training)
    architecture: str = ""             # network layout, in words
    channel_names: tuple = ()          # output channel names when there is more than one
    extra_config: dict = field(default_factory=dict)     # extra `config` entries (e.g. config.stardist)
    attachments: dict = field(default_factory=dict)      # {file name: text} shipped in the bundle
    dij_postprocess: dict = field(default_factory=dict)  # config.deepimagej.prediction.postprocess entry


def unet_words(config: dict) -> str:
    p = config["parameters"]
    dims = "3D " if (config.get("geometry") or {}).get("axes", "YX") == "ZYX" else ""
    pool = ", no pooling along Z" if p.get("pool_z") == "no" else ""
    return f"dl4mic {dims}U-Net (depth {p['depth']}, {p['filters']} filters, kernel {p['kernel_size']}{pool})"


def input_preprocessing(config: dict) -> list:
    """The training normalisation as the bundle's one input step: per-image percentiles -> `scale_range`,
    dataset mean/std -> `fixed_zero_mean_unit_variance`."""
    norm = config["normalization"]["source"]
    if norm.get("method") == "meanstd":
        return [("fixed_zero_mean_unit_variance", {"mean": norm["mean"], "std": norm["std"],
                                                   **({"axis": "channel"} if isinstance(norm["mean"], list) else {})})]
    spatial = [a.lower() for a in (config.get("geometry") or {}).get("axes", "YX")]
    return [("scale_range", {"axes": spatial, "min_percentile": float(norm["low"]),
                             "max_percentile": float(norm["high"]), "eps": EPS})]


def restoration_export(config: dict) -> ExportSpec:
    what = "stack" if (config.get("geometry") or {}).get("axes") == "ZYX" else "image"
    words = {"loss": "L1Loss (MAE)" if config["parameters"].get("loss") == "mae" else "MSELoss",
             "architecture": unet_words(config)}
    target = (config.get("normalization") or {}).get("target") or {"method": "source"}
    source = config["normalization"]["source"]
    if target.get("method") == "source" and source.get("method") == "meanstd":
        mean, std = source["mean"], source["std"]
        axis = {"axis": "channel"} if isinstance(mean, list) else {}
        return ExportSpec(
            output_id="restored", output_units="raw",
            output_description=f"Restored {what} in the intensity units of the input.",
            postprocessing=[("scale_linear", {"gain": std, "offset": mean, **axis})],
            units_note=(f"The output is in the input's intensity units: the network works on images scaled to "
                        f"zero mean and unit variance with the training data's {describe(source)} "
                        f"(`fixed_zero_mean_unit_variance`{', per channel' if axis else ''}), and `scale_linear` "
                        f"maps its output back (y * std + mean)."), **words)
    if target.get("method") == "fixed":
        lo, hi = float(target["low"]), float(target["high"])
        gain = max(hi - lo, 1e-6)
        return ExportSpec(
            output_id="restored", output_units="raw",
            output_description=f"Restored {what} in the intensity units of the training targets.",
            postprocessing=[("scale_linear", {"gain": gain, "offset": lo})],
            units_note=(f"The output is in the intensity units of the training targets: the network's "
                        f"normalised output y is mapped back with `scale_linear` (y * {gain:.6g} + {lo:.6g}), "
                        f"the fixed range of the training targets."), **words)
    return ExportSpec(
        output_id="restored", output_units="normalised",
        output_description=f"Restored {what} in normalised units (0 and 1: the input's low and high percentiles).",
        units_note=("The output is in **normalised units** (0 = the input image's low percentile, 1 = its high "
                    "percentile). The model was trained with targets scaled by each *input's* percentiles, whose "
                    "inverse is not a processing step DeepImageJ (or the bioimage.io spec) supports; to get raw "
                    "intensities multiply the output by (p_high - p_low) of the input and add p_low. "
                    "`dl4mic predict BUNDLE.zip` does this for you."), **words)


def segmentation_export(config: dict) -> ExportSpec:
    k = n_classes(config["parameters"])
    if k > 1:
        return ExportSpec(
            output_id="probability", output_units="class probabilities",
            output_description=f"Probability of each class (channel 0: background, 1-{k}: classes), softmax.",
            softmax=True, channel_names=("background",) + tuple(f"class{i}" for i in range(1, k + 1)),
            units_note=(f"The network ends in a softmax over background and {k} classes: each channel is the "
                        f"probability of its class. `dl4mic predict BUNDLE.zip` also writes the class map "
                        f"(`_classes.tif`, the most probable class per pixel)."),
            loss=f"cross-entropy + {config['parameters'].get('dice_weight', 0)} x soft Dice over the classes",
            architecture=unet_words(config))
    threshold = mask_threshold(config)
    source = "QC" if "qc_threshold" in config else "validation"
    return ExportSpec(
        output_id="mask", output_units="mask",
        output_description=f"Binary mask (1 = foreground): the probability binarised at {threshold:g}.",
        sigmoid=True,
        postprocessing=[("binarize", {"threshold": threshold})],
        units_note=(f"The network ends in a sigmoid (foreground probability); the bundle's single "
                    f"post-processing step `binarize` turns it into a 0/1 mask at threshold {threshold:g} "
                    f"(the best IoU on the {source} images). `dl4mic predict BUNDLE.zip` also writes the "
                    f"probability map and labelled objects."),
        loss=f"BCEWithLogitsLoss + {config['parameters'].get('dice_weight', 0)} x soft Dice",
        architecture=unet_words(config))


def export_spec(config: dict) -> ExportSpec:
    """The export needs of the network recorded in a model.yaml `config`."""
    from . import get_network

    name = config.get("network")
    described = get_network(name).export_spec(config)
    if described is None:
        raise UserError(f"Export of {name} models to bioimage.io is not available yet in this dl4mic version; "
                        f"train another network or score its outputs with dl4mic qc.")
    spec = replace(described, preprocessing=input_preprocessing(config))
    for op, _ in spec.preprocessing + spec.postprocessing:
        assert op in DIJ_OPS, op
    return spec
