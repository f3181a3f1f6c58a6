"""Build the bundle: weights, test/sample tensors, cover, README and the rdf (bioimage.io spec 0.5), for 2D
(batch, channel, y, x) and 3D (batch, channel, z, y, x) networks; the voxel size goes on the space axes.

The rdf is validated with bioimageio.spec's v0_5 classes and packaged with `save_bioimageio_package`,
then rewritten for DeepImageJ: the `ensure_dtype` steps the spec inserts are dropped (DeepImageJ does
not run them; every tensor is float32 already, so they are no-ops), and documentation/covers stay
plain file names.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.normalize import describe as describe_normalization
from ..networks.export_specs import export_spec
from . import weights as W
from .package import MODEL_YAML, QC_SUMMARY, STATE_DICT, TRAINING_LOG
from .dij import apply_op
from .redact import TEXT_SUFFIXES, PathRedactor
from .yamlio import dump_yaml, load_yaml

INPUT_ID = "input"
# Plain file names for documentation/covers are the spec's form up to 0.5.10 (0.5.11+ wants {source: ...}
# maps, which DeepImageJ does not read); bioimageio.spec converts them on load, so both read the rdf.
RDF_FORMAT_VERSION = "0.5.4"
DL4MIC_CITATION = {"text": "von Chamier L, Laine RF, Jukkala J, et al. Democratising deep learning for microscopy with "
                           "ZeroCostDL4Mic. Nature Communications 12, 2276 (2021).",
                   "doi": "10.1038/s41467-021-22518-0"}


def _rdf_name(title: str, name: str) -> str:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")
    text = "".join(c if c in allowed else "-" for c in f"{title} {name}")
    return " ".join(text.split())[:64].ljust(5, "_")


def _qc_summary(model_dir: Path) -> dict | None:
    path = model_dir / "qc" / "summary.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_sample(path: Path, tensor: np.ndarray, spatial: str = "YX", spacing=None) -> None:
    """A (1, C) + spatial tensor as DeepImageJ's sample TIFF. One channel: a plain YX image, or an ImageJ ZYX
    stack; channels: an ImageJ CYX hyperstack, or for stacks a ZCYX one (ImageJ's only hyperstack order: C
    channels x Z slices; the DeepImageJ check reads its axes). `spacing` (µm per spatial axis) becomes
    ImageJ's calibration (unit um, X/Y resolution, z spacing)."""
    import tifffile

    kw, meta = {}, {}
    if spacing:
        size = dict(zip(spatial, (float(v) for v in spacing)))
        kw["resolution"] = (1.0 / size["X"], 1.0 / size["Y"])
        meta["unit"] = "um"
        if "Z" in size:
            meta["spacing"] = size["Z"]
    if tensor.shape[1] == 1:
        data, axes = tensor[0, 0], spatial
        if axes == "YX" and not spacing:
            tifffile.imwrite(path, data)
            return
    else:
        data, axes = tensor[0], "C" + spatial
        if "Z" in spatial:
            data, axes = np.moveaxis(data, 0, spatial.index("Z") + 1), spatial.replace("YX", "CYX")
    tifffile.imwrite(path, np.ascontiguousarray(data), imagej=True, metadata={"axes": axes, **meta}, **kw)


def _channels_words(m) -> str:
    n = int(m.params.get("n_channels", 1))
    return "single-channel" if n == 1 else f"{n}-channel (channels first)"


def _cover_planes(x: np.ndarray, y: np.ndarray, softmax: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The 2D planes the cover shows from (1, C) + spatial tensors: the first channel (a class map, the most
    probable class, for softmax outputs), and for stacks the middle Z plane."""
    x = x[0, 0]
    y = y[0].argmax(axis=0).astype(np.float32) if softmax else y[0, 0]
    if x.ndim == 3:
        x, y = x[x.shape[0] // 2], y[y.shape[0] // 2]
    return x, y


def _cover(x: np.ndarray, y: np.ndarray, path: Path, truth: np.ndarray | None = None) -> None:
    """input | output (| ground truth), each scaled to its 1-99.8 percentiles, with a thin gap between."""
    from PIL import Image

    def u8(a):
        a = np.asarray(a, np.float64)
        lo, hi = np.percentile(a, [1, 99.8])
        return (np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)

    panels = [u8(x), u8(y)] + ([u8(truth)] if truth is not None else [])
    gap = np.full((x.shape[0], 4), 255, np.uint8)
    Image.fromarray(np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)).save(path)


def _truth_plane(truth: np.ndarray, task: str, params: dict) -> np.ndarray:
    """The ground truth as the cover shows it: the segmented class of masks (`mask_foreground`), the objects
    of label images, intensities of images; the middle Z plane of stacks."""
    t = np.asarray(truth)
    if t.ndim == 3:
        t = t[t.shape[0] // 2]
    if task not in ("segmentation", "instance"):
        return t.astype(np.float32)
    return ((t == 0) if params.get("mask_foreground") == "zero" else (t != 0)).astype(np.float32)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _input_axes(m) -> str:
    """The input's axes letters without batch: YX, CYX, ZYX or CZYX."""
    return ("C" if int(m.params.get("n_channels", 1)) > 1 else "") + m.geometry.axes


def _input_words(m) -> str:
    """The input in the rdf's words: 'Raw 2D single-channel image ...', 'Raw 3D stack (ZYX), ...'."""
    if m.geometry.ndim == 2:
        return f"Raw 2D {_channels_words(m)} image (any intensity range)."
    return f"Raw 3D stack ({_input_axes(m)}), {_channels_words(m)}, any intensity range."


def _tiling_sentence(g) -> str:
    """How DeepImageJ / bioimage.io tile the input, per axis (2D: one sentence for both axes when they agree)."""
    if g.ndim == 2 and len(set(g.multiple)) == 1 and len(set(g.halo)) == 1:
        mult, halo = g.multiple[0], g.halo[0]
        return (f"Images of any size are processed in tiles: sides are multiples of {mult} (min {2 * halo + mult}), "
                f"and {halo} pixels of context (the U-Net's receptive field) are discarded at each tile border.")

    def per_axis(values) -> str:
        items = [str(v) for v in values]
        return ", ".join(items[:-1]) + " and " + items[-1]

    unit = "voxels" if g.ndim == 3 else "pixels"
    lows = (2 * h + k for h, k in zip(g.halo, g.multiple))
    return (f"{'Stacks' if g.ndim == 3 else 'Images'} of any size are processed in tiles: along {per_axis(g.axes)} "
            f"the sides are multiples of {per_axis(g.multiple)} (min {per_axis(lows)}), and {per_axis(g.halo)} "
            f"{unit} of context (the U-Net's receptive field) are discarded at each tile border.")


def voxel_size(g) -> tuple[float, ...] | None:
    """The recorded voxel size (µm) for the network's axes (the YX of a ZYX spacing for a 2D model), or None."""
    if not g.spacing or len(g.spacing) < g.ndim or not all(float(v) > 0 for v in g.spacing):
        return None
    return tuple(float(v) for v in g.spacing[-g.ndim:])


def _spacing_words(g) -> str:
    return " x ".join(f"{v:.4g}" for v in voxel_size(g)) + f" µm ({' x '.join(g.axes)})"


def _readme(m, spec, es, image_shape, qc: dict | None, out_units: str, meta: BundleMeta,
            cover_truth: bool = False) -> str:
    c, p, g = m.config, m.params, m.geometry
    data, training = c.get("data") or {}, c.get("training") or {}
    norm = c["normalization"]["source"]
    what = "image" if g.ndim == 2 else f"stack ({_input_axes(m)})"
    lines = [f"# {spec.title}: {c.get('name', m.dir.name)}", "", spec.summary.strip(), "",
             f"Trained and exported with dl4mic {__version__} (the local successor of the ZeroCostDL4Mic notebooks).",
             "", "## Input and output", "",
             f"- **Input** `{INPUT_ID}`: one {g.ndim}D {_channels_words(m)} {what} in raw units (any bit depth). "
             f"Pre-processing `{es.preprocessing[0][0]}` normalises it as in training: {describe_normalization(norm)}.",
             f"- **Output** `{es.output_id}`: {es.output_description}", "", es.units_note, "",
             _tiling_sentence(g), ""]
    if voxel_size(g):
        lines += [f"Voxel size of the training data: {_spacing_words(g)}; the bundle's space axes carry it "
                  f"(`scale`, unit micrometer) and the sample TIFFs its ImageJ calibration.", ""]
    shown = "the most probable class" if es.softmax else f"`{es.output_id}`"
    panels = f"input | output ({shown})" + (" | ground truth" if cover_truth else "")
    where = "the middle Z plane of the sample stack" if g.ndim == 3 else "the sample image"
    lines += [f"The cover shows {where}: {panels}.", ""]
    lines += ["## Use it", "",
              "- Fiji: DeepImageJ → *Install model* from this zip, then *DeepImageJ Run* on an open image.",
              "- Python: `bioimageio predict` (bioimageio.core), or `dl4mic predict THIS.zip --input DIR --output DIR` "
              "(writes outputs in the training targets' units, and masks/labels for segmentation).", "",
              "## Training data", ""]
    if meta.data_description:
        lines.append(f"- {meta.data_description}")
    for cite in meta.data_citations:
        ref = f" doi:{cite['doi']}" if cite.get("doi") else f" {cite['url']}" if cite.get("url") else ""
        lines.append(f"- Data citation: {cite['text']}{ref}")
    lines += [f"- Source images: `{data.get('source')}`" + (f"; targets: `{data.get('target')}`" if data.get("target") else ""),
              f"- {data.get('n_pairs', '?')} image pair(s); {len(data.get('train_files') or [])} for training, "
              f"{len(data.get('val_files') or [])} for validation; source dtype {data.get('source_dtype')}.",
              f"- Training: {training.get('epochs_done', '?')} epoch(s), best epoch {training.get('best_epoch', '?')} "
              f"(validation loss {_fmt(training.get('best_val_loss'))}), {_fmt(training.get('seconds'))} s on "
              f"{(c.get('environment') or {}).get('device', '?')}.", "",
              "## Parameters", "", "| parameter | value |", "| --- | --- |"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in p.items()]
    lines += ["", "# Validation", ""]
    if qc:
        td = qc.get("test_data") or {}
        lines += [f"Quality control by `dl4mic qc` on {td.get('n_images', '?')} test image(s) with ground "
                  f"truth (`{td.get('source')}`), {qc.get('date', '')}. Mean scores per image; the baselines show "
                  f"what simple methods reach on the same images.", ""]
        seen = set((data.get("train_files") or [])) | set((data.get("val_files") or []))
        if td.get("source") == data.get("source") and seen & set(td.get("files") or []):
            lines += ["**Caution:** some QC images were also used for training or validation, so these scores "
                      "are optimistic; score the model on held-out images for an unbiased estimate.", ""]
        metrics = qc.get("metrics") or {"model": qc.get("means", {})}
        names = list(next(iter(metrics.values()), {}).keys())
        lines += ["| method | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
        for method, scores in metrics.items():
            lines.append(f"| {method} | " + " | ".join(_fmt(scores.get(n)) for n in names) + " |")
        if qc.get("baselines"):
            lines.append("")
        for method, text in (qc.get("baselines") or {}).items():
            lines.append(f"- {method}: {text}")
        if "qc_threshold" in qc:
            lines.append(f"\nBest probability threshold on the QC images: {qc['qc_threshold']:g} "
                         f"(used by this bundle's `binarize`; `dl4mic predict` uses the model's threshold "
                         f"{_fmt(c.get('threshold'))} unless given --threshold).")
        lines += ["", "The full QC summary is attached as `" + QC_SUMMARY + "`."]
    else:
        lines += ["**This model has not been through quality control** (`dl4mic qc MODEL --source TEST --target "
                  "TRUTH` scores it against ground truth); export again after QC to include the results."]
    lines += ["", "## Limits", ""]
    if spec.limits:
        lines += [spec.limits, ""]
    lines += [f"It was trained on {data.get('n_pairs', '?')} image(s) of one kind of data; images from another "
              "microscope, stain, magnification or noise level can fail silently. Check it against ground truth "
              "on a few of your own images (`dl4mic qc`) before trusting it.", "", "## Citations", ""]
    for cite in spec.citations:
        lines.append(f"- {cite['text']}" + (f" doi:{cite['doi']}" if cite.get("doi") else ""))
    lines += ["- dl4mic: deep learning for microscopists who work in Fiji (this software), built on the "
              "ZeroCostDL4Mic workflow cited above.", ""]
    return "\n".join(lines)


def _config(m, spec, es, qc, image_shape, out_shape, out_units: str, training_hours, n_params) -> dict:
    from bioimageio.spec.model import v0_5 as v

    p, c, g = m.params, m.config, m.geometry
    norm = c["normalization"]["source"]
    patch = p.get("patch_size")
    patch = (f"{'x'.join(map(str, patch))}-{'voxel' if g.ndim == 3 else 'pixel'} ({g.axes})"
             if isinstance(patch, (list, tuple)) else f"{patch}-pixel")
    training = v.TrainingDetails(
        training_preprocessing=(f"normalisation: {describe_normalization(norm)}; random "
                                f"{patch} patches" + ("; random flips and 90-degree rotations"
                                                      if p.get("augment") else "")),
        training_epochs=float((c.get("training") or {}).get("epochs_done") or p.get("epochs")),
        training_batch_size=float(p["batch_size"]), initial_learning_rate=float(p["learning_rate"]),
        learning_rate_schedule=f"ReduceLROnPlateau on validation loss (factor {p.get('lr_factor')}, "
                               f"patience {p.get('lr_patience')})",
        loss_function=es.loss, optimizer="torch.optim.Adam", training_duration=training_hours)
    bioimageio = v.BioimageioConfig(training=training, architecture_type="U-Net", task=m.task,
                                    model_parameter_count=n_params,
                                    architecture_description=f"{spec.title}: {es.architecture}")
    def xyzc(spatial, channels) -> str:  # DeepImageJ's "x x y x z x c"
        z = spatial[-3] if len(spatial) > 2 else 1
        return f"{spatial[-1]} x {spatial[-2]} x {z} x {channels}"

    pixel_size = {"x": "1 pixel", "y": "1 pixel", "z": "1 pixel"}
    if voxel_size(g):
        pixel_size.update({a.lower(): f"{s:.6g} µm" for a, s in zip(g.axes, voxel_size(g))})
    deepimagej = {
        "pyramidal_model": False, "allow_tiling": True, "model_keys": None,
        "prediction": {"preprocess": [{"spec": None}], "postprocess": [es.dij_postprocess or {"spec": None}]},
        "test_information": {
            "inputs": [{"name": "sample_input.tif", "size": xyzc(image_shape[-g.ndim:], int(p.get('n_channels', 1))),
                        "pixel_size": pixel_size}],
            "outputs": [{"name": "sample_output.tif", "type": "image", "size": xyzc(out_shape[1:], out_shape[0])}],
            "memory_peak": None, "runtime": None},
    }
    dl4mic = {
        "version": __version__, "network": c["network"], "task": m.task, "model_name": c.get("name"),
        "normalization": c["normalization"], "output_units": out_units,
        "threshold": c.get("threshold"), "qc_threshold": c.get("qc_threshold"),
        "files": {"model_yaml": MODEL_YAML, "state_dict": STATE_DICT,
                  "qc_summary": QC_SUMMARY if qc else None, "training_log": TRAINING_LOG},
        "qc": None if not qc else {k: qc.get(k) for k in ("date", "main_metric", "metrics", "test_data",
                                                          "qc_threshold", "model_threshold") if k in qc},
    }
    return {"bioimageio": bioimageio, "deepimagej": deepimagej, "dl4mic": dl4mic, **es.extra_config}


@dataclass
class BundleMeta:
    """Who made the model and what it is, from the user (profile and export options)."""

    authors: list = field(default_factory=list)        # names or {name, affiliation, orcid, email}
    license: str | None = None                         # SPDX id (default: the network spec's)
    data_citations: list = field(default_factory=list)  # {text, doi | url}
    name: str | None = None                            # the model's name on the zoo
    description: str | None = None                     # one paragraph: what the model does, on what
    data_description: str | None = None                # what the training data is (instead of folder names)

    def author_dicts(self) -> list[dict]:
        return [a if isinstance(a, dict) else {"name": str(a)} for a in self.authors]


def build_bundle(m, image: np.ndarray, stage: Path, *, meta: BundleMeta | None = None,
                 weight_formats=("pytorch_state_dict", "torchscript", "onnx"),
                 file_name: str = "model.bioimage.io.zip", truth: np.ndarray | None = None) -> Path:
    """Write every file into `stage/files`, package them as `stage/file_name`; returns the zip. `truth`: the
    ground truth of `image` (cropped alike), shown on the cover."""
    import torch
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as v

    spec, c = m.spec, m.config
    meta = meta or BundleMeta()
    es = export_spec(c)
    files = stage / "files"
    files.mkdir(parents=True)
    g = m.geometry
    nd, space_ids = g.ndim, [a.lower() for a in g.axes]
    halo, mult = tuple(int(h) for h in g.halo), tuple(int(k) for k in g.multiple)
    lows = tuple(2 * h + k for h, k in zip(halo, mult))  # the smallest input each axis accepts

    # --- weights ---
    reference = m.network.export_module(m.module.to("cpu").eval())
    module, arch_callable, kwargs = W.build_bundle_module(reference, es.sigmoid, es.softmax)
    n_in = int(m.params.get("n_channels", 1))
    example = torch.zeros((1, n_in) + lows)
    probe = torch.from_numpy(np.random.default_rng(0).random((1, n_in) + lows, np.float32))
    with torch.no_grad():
        want = reference(probe)
        want = torch.softmax(want, dim=1) if es.softmax else torch.sigmoid(want) if es.sigmoid else want
        if not torch.allclose(module(probe), want, atol=1e-5, rtol=1e-4):
            raise RuntimeError("the shipped architecture source does not rebuild the trained network")
    W.save_state_dict(module, files / STATE_DICT)
    (files / W.ARCH_FILE).write_text(W.architecture_source(), encoding="utf-8")
    W.save_torchscript(module, example, files / "model_torchscript.pt")
    W.save_onnx(module, example, files / "model.onnx", INPUT_ID, es.output_id)

    # --- test/sample tensors: raw input; output from the packaged ONNX weights (what DeepImageJ runs) ---
    pre = {"id": es.preprocessing[0][0], "kwargs": es.preprocessing[0][1]}
    post = [{"id": op, "kwargs": kw} for op, kw in es.postprocessing]
    axes = ["batch", "channel"] + space_ids
    x_raw = np.ascontiguousarray(image, dtype=np.float32).reshape((1, n_in) + image.shape[-nd:])
    import onnxruntime as ort

    session = ort.InferenceSession(str(files / "model.onnx"), providers=["CPUExecutionProvider"])
    y = session.run(None, {INPUT_ID: apply_op(pre, x_raw, axes)})[0]
    for op in post:
        y = apply_op(op, y, axes)
    y = y.astype(np.float32)
    np.save(files / "test_input.npy", x_raw)
    np.save(files / "test_output.npy", y)
    _write_sample(files / "sample_input.tif", x_raw, g.axes, voxel_size(g))
    _write_sample(files / "sample_output.tif", y, g.axes, voxel_size(g))
    with_truth = truth is not None and not es.softmax  # a class map beside a foreground mask would mislead
    _cover(*_cover_planes(x_raw, y, es.softmax), files / "cover.png",
           _truth_plane(truth, m.task, m.params) if with_truth else None)

    # --- documentation and attachments: no local path in any of them ---
    qc = _qc_summary(m.dir)
    redactor = PathRedactor.for_model(m.dir, c, qc)
    out_units = es.output_units
    (files / "README.md").write_text(redactor.text(_readme(m, spec, es, image.shape, qc, out_units, meta,
                                                           with_truth)), encoding="utf-8")
    (files / MODEL_YAML).write_text(redactor.text((m.dir / "model.yaml").read_text(encoding="utf-8")),
                                    encoding="utf-8")
    attachments = [files / MODEL_YAML]
    for name, text in es.attachments.items():
        (files / name).write_text(redactor.text(text), encoding="utf-8")
        attachments.append(files / name)
    if qc:
        (files / QC_SUMMARY).write_text(json.dumps(redactor.data(qc), indent=2), encoding="utf-8")
        attachments.append(files / QC_SUMMARY)
    log = m.dir / "training" / "log.csv"
    if log.is_file():
        (files / TRAINING_LOG).write_bytes(log.read_bytes())
        attachments.append(files / TRAINING_LOG)

    # --- rdf ---
    # the voxel size (µm) on the space axes, input and output alike (output sizes refer to the input's)
    spacing = voxel_size(g)
    calibration = [{"scale": s, "unit": "micrometer"} for s in spacing] if spacing else [{}] * nd

    def space_in(i):
        return v.SpaceInputAxis(id=v.AxisId(space_ids[i]), size=v.ParameterizedSize(min=lows[i], step=mult[i]),
                                **calibration[i])

    def space_out(i):
        return v.SpaceOutputAxisWithHalo(id=v.AxisId(space_ids[i]), halo=halo[i], **calibration[i],
                                         size=v.SizeReference(tensor_id=v.TensorId(INPUT_ID),
                                                              axis_id=v.AxisId(space_ids[i])))

    procs = {"binarize": (v.BinarizeDescr, v.BinarizeKwargs), "scale_linear": (v.ScaleLinearDescr, v.ScaleLinearKwargs),
             "scale_range": (v.ScaleRangeDescr, v.ScaleRangeKwargs),
             "fixed_zero_mean_unit_variance": (v.FixedZeroMeanUnitVarianceDescr, v.FixedZeroMeanUnitVarianceKwargs),
             "clip": (v.ClipDescr, v.ClipKwargs), "sigmoid": (v.SigmoidDescr, None)}

    along_axis = {"scale_linear": v.ScaleLinearAlongAxisKwargs,
                  "fixed_zero_mean_unit_variance": v.FixedZeroMeanUnitVarianceAlongAxisKwargs}

    def proc(op):
        cls, kw = procs[op["id"]]
        if "axis" in op["kwargs"]:  # per-channel values (multichannel models)
            kw = along_axis[op["id"]]
        return cls(kwargs=kw(**op["kwargs"])) if kw else cls()

    inp = v.InputTensorDescr(
        id=v.TensorId(INPUT_ID), description=_input_words(m),
        axes=[v.BatchAxis(), v.ChannelAxis(channel_names=["raw"] if n_in == 1 else [f"raw{i}" for i in range(n_in)]),
              *(space_in(i) for i in range(nd))],
        test_tensor=v.FileDescr(source=files / "test_input.npy"),
        sample_tensor=v.FileDescr(source=files / "sample_input.tif"),
        data=v.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[proc(pre)])
    out = v.OutputTensorDescr(
        id=v.TensorId(es.output_id), description=es.output_description,
        axes=[v.BatchAxis(), v.ChannelAxis(channel_names=list(es.channel_names or (
            [es.output_id] if y.shape[1] == 1 else [f"{es.output_id}{i}" for i in range(y.shape[1])]))),
              *(space_out(i) for i in range(nd))],
        test_tensor=v.FileDescr(source=files / "test_output.npy"),
        sample_tensor=v.FileDescr(source=files / "sample_output.tif"),
        data=v.IntervalOrRatioDataDescr(type="float32"),
        postprocessing=[proc(op) for op in post])
    torch_version = v.Version(torch.__version__.split("+")[0])
    weights = {}
    if "pytorch_state_dict" in weight_formats:
        weights["pytorch_state_dict"] = v.PytorchStateDictWeightsDescr(
            source=files / STATE_DICT, pytorch_version=torch_version,
            architecture=v.ArchitectureFromFileDescr(source=files / W.ARCH_FILE, callable=arch_callable,
                                                     kwargs=kwargs))
    parent = "pytorch_state_dict" if "pytorch_state_dict" in weights else None
    if "torchscript" in weight_formats:
        weights["torchscript"] = v.TorchscriptWeightsDescr(source=files / "model_torchscript.pt",
                                                           pytorch_version=torch_version, parent=parent)
    if "onnx" in weight_formats:
        weights["onnx"] = v.OnnxWeightsDescr(source=files / "model.onnx", opset_version=W.ONNX_OPSET, parent=parent)
    n_params = int(sum(t.numel() for t in module.parameters()))
    hours = (c.get("training") or {}).get("seconds")
    config = redactor.data(_config(m, spec, es, qc, image.shape, y.shape[1:], out_units,
                                   float(hours) / 3600 if hours is not None else None, n_params))
    names = meta.author_dicts() or [a if isinstance(a, dict) else {"name": str(a)} for a in c.get("authors") or []]
    if not names:
        names = [{"name": "dl4mic user"}]
    # data citations with a DOI go into the rdf too (the README lists all; bioimageio.spec checks URLs online)
    citations = list(spec.citations or [DL4MIC_CITATION]) + [ci for ci in meta.data_citations if ci.get("doi")]
    tags = list(dict.fromkeys(list((spec.bioimageio or {}).get("tags", [])) + ["deepimagej", "bioimageio", "dl4mic"]))
    descr = v.ModelDescr(
        name=meta.name or _rdf_name(spec.title, c.get("name", m.dir.name)),
        description=(meta.description or f"{spec.title} ({m.task}) trained with dl4mic on "
                     f"{(c.get('data') or {}).get('n_pairs', '?')} image pair(s). {es.output_description}")[:1024],
        authors=[v.Author(**{k: a[k] for k in ("name", "affiliation", "email", "orcid") if a.get(k)}) for a in names],
        cite=[v.CiteEntry(text=ci["text"], doi=ci.get("doi")) for ci in citations],
        license=meta.license or (spec.bioimageio or {}).get("license", "MIT"),
        tags=tags, documentation=v.FileDescr(source=files / "README.md"),
        covers=[v.FileDescr(source=files / "cover.png")],
        attachments=[v.FileDescr(source=a) for a in attachments],
        inputs=[inp], outputs=[out], weights=v.WeightsDescr(**weights),
        timestamp=datetime.now(timezone.utc).replace(microsecond=0).replace(tzinfo=None),
        version="1", config=v.Config(**config))
    tmp_zip = stage / file_name
    save_bioimageio_package(descr, output_path=tmp_zip)
    _rewrite_rdf_for_deepimagej(tmp_zip)
    _refuse_local_paths(tmp_zip, redactor)
    return tmp_zip


def _refuse_local_paths(zip_path: Path, redactor: PathRedactor) -> None:
    """The last guard: no text file of the bundle names a local path (a leak would be a dl4mic bug)."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            if info.filename.lower().endswith(TEXT_SUFFIXES):
                leaks = redactor.leaks(zf.read(info).decode("utf-8", "replace"))
                if leaks:
                    raise RuntimeError(f"the bundle's {info.filename} names the local path {leaks[0]}; "
                                       "the bundle was not written (please report this dl4mic bug)")


def _dij_rdf(rdf: dict) -> dict:
    """Drop the `ensure_dtype` steps bioimageio.spec inserts (DeepImageJ cannot run them; all tensors are
    float32 so they are no-ops) and keep documentation/covers as plain file names."""
    for t in rdf.get("inputs", []):
        t["preprocessing"] = [p for p in t.get("preprocessing", []) if p.get("id") != "ensure_dtype"]
    for t in rdf.get("outputs", []):
        t["postprocessing"] = [p for p in t.get("postprocessing", []) if p.get("id") != "ensure_dtype"]
    rdf["format_version"] = RDF_FORMAT_VERSION
    doc = rdf.get("documentation")
    if isinstance(doc, dict):
        rdf["documentation"] = doc["source"]
    rdf["covers"] = [cv["source"] if isinstance(cv, dict) else cv for cv in rdf.get("covers", [])]
    for w in (rdf.get("weights") or {}).values():
        for key in [k for k, val in w.items() if val is None or val == ""]:
            del w[key]
    return rdf


def _rewrite_rdf_for_deepimagej(zip_path: Path) -> None:
    tmp = zip_path.with_name(zip_path.name + ".rdf")
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename in ("rdf.yaml", "bioimageio.yaml"):
                rdf = _dij_rdf(load_yaml(data))
                data = dump_yaml(rdf).encode("utf-8")
                info = zipfile.ZipInfo("rdf.yaml", date_time=info.date_time)
                info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
    tmp.replace(zip_path)
