"""The BioImage Model Zoo's DeepImageJ compatibility check, reproduced offline (no Fiji needed).

The zoo's check (bioimage-io/collection `scripts/check_compatibility_deepimagej.py` and the JDLL
harness) refuses models with more than one input, applies the first pre-processing step to the
sample input, runs the weights DeepImageJ uses with the output halo removed, applies the first
post-processing step and compares with the expected output. Here: the same, with the ONNX weights
on onnxruntime and the processing ops implemented as DeepImageJ defines them, for 2D (batch, channel,
y, x) and 3D (batch, channel, z, y, x) tensors; DeepImageJ runs no other axes (time, index).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .yamlio import load_yaml

DIJ_OPS = ("binarize", "clip", "scale_linear", "scale_range", "sigmoid", "zero_mean_unit_variance",
           "fixed_zero_mean_unit_variance")
MAX_OPSET, MAX_IR = 18, 8
ATOL, RTOL = 1.5e-4, 1e-4


SPACE_AXES = ("z", "y", "x")
# ImageJ / tifffile axes letters of a sample TIFF -> the rdf's axis ids (ImageJ's plain stacks read as I)
TIFF_AXES = {"C": "channel", "S": "channel", "Z": "z", "I": "z", "Y": "y", "X": "x"}


class DijIncompatible(Exception):
    pass


def _axes_ids(tensor: dict) -> list[str]:
    return [a["id"] if a.get("id") else a["type"] for a in tensor["axes"]]


def check_axes(tensor: dict) -> None:
    """DeepImageJ runs tensors of at most one batch and one channel axis and the space axes z, y, x (y and x
    required): 2D (BCYX) and 3D (BCZYX) images; refuse anything else (time, index, other space axes)."""
    ids, types = _axes_ids(tensor), [a.get("type") for a in tensor["axes"]]
    for a, t in zip(ids, types):
        if t not in ("batch", "channel", "space") or (t == "space" and a not in SPACE_AXES):
            raise DijIncompatible(f"{tensor['id']} has the {t} axis {a!r}; DeepImageJ runs tensors with batch, "
                                  f"channel and z/y/x space axes only")
    if len(set(ids)) != len(ids) or types.count("batch") > 1 or types.count("channel") > 1:
        raise DijIncompatible(f"{tensor['id']} repeats an axis ({', '.join(ids)})")
    if not {"y", "x"} <= set(ids):
        raise DijIncompatible(f"{tensor['id']} lacks the y and x axes DeepImageJ needs ({', '.join(ids)})")


def read_sample(data: bytes, axes: list[str]) -> np.ndarray:
    """A sample TIFF as float32 with its axes in the tensor's order (`axes`, the rdf's ids): ImageJ
    hyperstacks of stacks are stored ZCYX (ImageJ's order) and come back as CZYX; other TIFFs as stored."""
    import tifffile

    with tifffile.TiffFile(_bytes_io(data)) as tif:
        array = tif.asarray()
        letters = tif.series[0].axes if tif.series else ""
    array = np.asarray(array, np.float32)
    ids = [TIFF_AXES.get(c) for c in letters]
    if len(ids) == array.ndim and None not in ids and len(set(ids)) == len(ids) and set(ids) <= set(axes):
        order = sorted(range(len(ids)), key=lambda i: axes.index(ids[i]))
        array = np.transpose(array, order)
    return array


def apply_op(op: dict, x: np.ndarray, axes: list[str]) -> np.ndarray:
    """One processing step on a float array laid out as `axes` (bioimage.io spec 0.5 semantics)."""
    name, kw = op["id"], dict(op.get("kwargs") or {})
    x = x.astype(np.float32)
    if "axis" in kw:  # per-channel values: broadcast them along their axis
        shape = [1] * x.ndim
        shape[axes.index(kw["axis"])] = -1
        for key in ("gain", "offset", "mean", "std"):
            if isinstance(kw.get(key), list):
                kw[key] = np.asarray(kw[key], np.float32).reshape(shape)
        del kw["axis"]
    red = tuple(axes.index(a) for a in kw.get("axes") or [a for a in axes if a != "batch"])
    if name == "binarize":
        return (x > kw["threshold"]).astype(np.float32)
    if name == "clip":
        return np.clip(x, kw.get("min"), kw.get("max"))
    if name == "scale_linear":
        gain, offset = (np.asarray(kw.get(k, d), np.float32) for k, d in (("gain", 1.0), ("offset", 0.0)))
        return (x * gain + offset).astype(np.float32)
    if name == "sigmoid":
        return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32)
    if name == "scale_range":
        lo = np.percentile(x, kw.get("min_percentile", 0.0), axis=red, keepdims=True)
        hi = np.percentile(x, kw.get("max_percentile", 100.0), axis=red, keepdims=True)
        return ((x - lo) / (hi - lo + kw.get("eps", 1e-6))).astype(np.float32)
    if name == "zero_mean_unit_variance":
        return ((x - x.mean(axis=red, keepdims=True)) / (x.std(axis=red, keepdims=True) + kw.get("eps", 1e-6))
                ).astype(np.float32)
    if name == "fixed_zero_mean_unit_variance":
        mean, std = (np.asarray(kw[k], np.float32) for k in ("mean", "std"))
        return ((x - mean) / (std + np.float32(kw.get("eps", 1e-6)))).astype(np.float32)
    raise DijIncompatible(f"processing step {name!r} is not one DeepImageJ runs ({', '.join(DIJ_OPS)})")


def check_deepimagej(bundle: str | Path) -> dict:
    """Raise DijIncompatible with the reason, or return {max_abs_diff, n_pixels, ...} for the sample."""
    import onnx
    import onnxruntime as ort

    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        rdf_name = next((n for n in ("rdf.yaml", "bioimageio.yaml") if n in names), None)
        if rdf_name is None:
            raise DijIncompatible("the bundle has no rdf.yaml at its top level")
        rdf = load_yaml(zf.read(rdf_name))

        def read(name: str) -> bytes:
            return zf.read(name)

        if rdf.get("type") != "model":
            raise DijIncompatible("only model resources run in DeepImageJ")
        if len(rdf["inputs"]) != 1:
            raise DijIncompatible(f"DeepImageJ runs models with exactly one input, not {len(rdf['inputs'])}")
        for t in rdf["inputs"] + rdf["outputs"]:
            check_axes(t)
            for op in t.get("preprocessing", []) + t.get("postprocessing", []):
                if op["id"] not in DIJ_OPS:
                    raise DijIncompatible(f"{t['id']} uses processing step {op['id']!r}, which DeepImageJ does not run")
            if len(t.get("preprocessing", [])) > 1 or len(t.get("postprocessing", [])) > 1:
                raise DijIncompatible(f"{t['id']} has more than one processing step; DeepImageJ's test applies only the first")
        if not isinstance(rdf.get("documentation"), str) or not all(isinstance(c, str) for c in rdf.get("covers", [])):
            raise DijIncompatible("documentation and covers must be plain file names for DeepImageJ")
        dij = (rdf.get("config") or {}).get("deepimagej")
        if not dij or "allow_tiling" not in dij:
            raise DijIncompatible("config.deepimagej (allow_tiling, ...) is missing")
        weights = rdf["weights"].get("onnx")
        if weights is None:
            raise DijIncompatible("the bundle has no ONNX weights")
        proto = onnx.load_model_from_string(read(weights["source"]))
        opset = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        if opset > MAX_OPSET or proto.ir_version > MAX_IR or weights.get("opset_version", opset) > MAX_OPSET:
            raise DijIncompatible(f"ONNX opset {opset} / IR version {proto.ir_version} is beyond DeepImageJ's "
                                  f"opset {MAX_OPSET} / IR {MAX_IR}")
        if proto.graph.initializer and any(i.data_location == onnx.TensorProto.EXTERNAL for i in proto.graph.initializer):
            raise DijIncompatible("the ONNX weights use external data; DeepImageJ needs one file")

        inp, out = rdf["inputs"][0], rdf["outputs"]
        if len(out) != 1:
            raise DijIncompatible("dl4mic bundles have one output")
        out = out[0]
        in_axes, out_axes = _axes_ids(inp), _axes_ids(out)
        sample = read_sample(read(inp["sample_tensor"]["source"]), in_axes)
        test_in = np.load(_bytes_io(read(inp["test_tensor"]["source"])))
        if sample.squeeze().shape != test_in.squeeze().shape or not np.array_equal(sample.squeeze(), test_in.squeeze()):
            raise DijIncompatible("the sample input (TIFF) differs from the test input (npy)")
        expected = np.load(_bytes_io(read(out["test_tensor"]["source"])))
        x = sample.reshape(test_in.shape)
        for op in inp.get("preprocessing", [])[:1]:
            x = apply_op(op, x, in_axes)
        session = ort.InferenceSession(read(weights["source"]), providers=["CPUExecutionProvider"])
        y = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
        for op in out.get("postprocessing", [])[:1]:
            y = apply_op(op, y, out_axes)
    if y.shape != expected.shape:
        raise DijIncompatible(f"the ONNX output has shape {y.shape}, the test output {expected.shape}")
    diff = np.abs(y.astype(np.float64) - expected.astype(np.float64))
    bad = diff > ATOL + RTOL * np.abs(expected)
    if bad.any():
        raise DijIncompatible(f"the ONNX weights on the sample differ from the test output at {int(bad.sum())} "
                              f"pixel(s) (max difference {diff.max():.3g})")
    return {"max_abs_diff": float(diff.max()), "n_pixels": int(diff.size), "onnx_opset": opset,
            "onnx_ir_version": int(proto.ir_version)}


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)
