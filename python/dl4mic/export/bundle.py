"""`dl4mic export`: a model folder -> NAME.bioimage.io.zip (bioimage.io spec 0.5, DeepImageJ-ready),
validated with bioimageio.core's model test and the zoo's DeepImageJ check before it is kept;
the way back (bundle -> model folder) is `export.package`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..data.io import atomic_path, staging_folder
from ..errors import UserError

WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
SAMPLE_SIDE = 256
SAMPLE_SIDES = {2: (SAMPLE_SIDE, SAMPLE_SIDE), 3: (32, 128, 128)}  # sample crop cap per axis (YX; ZYX)


# --------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------
def default_output(model_dir: Path, config: dict) -> Path:
    return model_dir / "export" / f"{_safe_name(config.get('name') or model_dir.name)}.bioimage.io.zip"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name)).strip("._") or "model"


def export(model, output=None, *, overwrite: bool = False, sample=None, authors=None, test: bool = True,
           weight_formats=WEIGHT_FORMATS, report: dict | None = None, zoo: bool = False, name: str | None = None,
           description: str | None = None, data_description: str | None = None, license: str | None = None,
           profile: dict | None = None) -> Path:
    """Write the bioimage.io bundle of the model folder `model` and return its path.

    `output`: the zip to write (default MODEL/export/NAME.bioimage.io.zip); an existing one is kept unless
    `overwrite`. `sample`: image for the test/sample tensors and cover (default: a validation image of
    the training data, else a QC test image). `authors`: names, "Name; Affiliation; ORCID" texts or bioimage.io author dicts; default the
    user's profile (`dl4mic profile set`), whose licence and data citations are used too; `name`,
    `description`, `data_description` and `license` describe this model.
    `test`: run bioimageio.core's model test for every weight format and the DeepImageJ check; the
    bundle is written only if they pass (UserError otherwise); `report`, a dict, receives their results.
    `zoo`: package for upload to the bioimage.io Model Zoo: real authors, a licence and a description are
    required, the model test runs with full determinism, and UPLOAD.md is written beside the zip.
    Nothing is written outside the output's folder; the zip appears atomically."""
    from ..predict.model import LoadedModel
    from .describe import BundleMeta
    from .profile import load_profile, parse_person

    model_dir = Path(model)
    if model_dir.is_file() and model_dir.suffix == ".zip":
        raise UserError(f"{model_dir} is already a bundle; give the model folder that `dl4mic train` wrote.")
    m = LoadedModel(model_dir, device="cpu")
    out = Path(output) if output else default_output(model_dir, m.config)
    if out.suffix != ".zip":
        raise UserError(f"--output {out} must be a .zip file, e.g. {out.name}.bioimage.io.zip.")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; rerun with --overwrite to replace it, or give another --output.")
    profile = load_profile() if profile is None else profile
    authors = [parse_person(a) if isinstance(a, str) else a for a in authors or []]
    meta = BundleMeta(authors=authors or list(profile.get("authors") or []), license=license or profile.get("license"),
                      data_citations=list(profile.get("data_citations") or []), name=name, description=description,
                      data_description=data_description)
    if zoo:
        _check_zoo_ready(meta)
    image, truth = _sample_image(m, sample)
    stage = staging_folder(out)
    try:
        from .describe import build_bundle

        tmp_zip = build_bundle(m, image, stage, meta=meta, weight_formats=tuple(weight_formats), file_name=out.name,
                               truth=truth)
        results = {}
        if test or zoo:
            results = validate_bundle(tmp_zip, determinism="full" if zoo else "seed_only")
            if report is not None:
                report.update(results)
        if zoo:
            from .zoo import upload_notes

            upload = out.with_name("UPLOAD.md")
            with atomic_path(upload) as tmp:
                tmp.write_text(upload_notes(out.name, tmp_zip, meta, profile, results), encoding="utf-8")
        os.replace(tmp_zip, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def _check_zoo_ready(meta) -> None:
    """What the zoo's reviewers turn back, refused before any work (one sentence each)."""
    from .profile import placeholder_authors

    if placeholder_authors(meta.author_dicts()):
        raise UserError("The bundle's authors are placeholders; name the real authors once with "
                        "`dl4mic profile set --author \"Name; Affiliation; ORCID\"` (or --author), then export "
                        "with --zoo again.")
    if not meta.license:
        raise UserError("No licence is chosen for the model; set one with `dl4mic profile set --license "
                        "CC-BY-4.0` (any SPDX id), or give --license.")
    if not meta.description:
        raise UserError("The zoo needs a description of the model; give --description \"what it does, on which "
                        "data\".")


def validate_bundle(path: Path, determinism: str = "seed_only") -> dict:
    """bioimageio.core's model test (every weight format in the bundle), then the offline DeepImageJ check.

    Raises UserError (one sentence, exit code 2) naming the first failure."""
    from .dij import DijIncompatible, check_deepimagej

    summary = run_bioimageio_test(path, determinism=determinism)
    results = {"bioimageio": summary.status, "determinism": determinism,
               "checks": [(d.name, d.status) for d in summary.details], "versions": _versions()}
    if summary.status != "passed":
        raise UserError(f"The exported bundle failed bioimageio.core's model test ({_first_error(summary)}); "
                        f"the bundle was not written; please report this dl4mic bug with the model's model.yaml.")
    try:
        results["deepimagej"] = check_deepimagej(path)
    except DijIncompatible as exc:
        raise UserError(f"The exported bundle would not run in DeepImageJ ({exc}); the bundle was not "
                        f"written.") from None
    return results


def run_bioimageio_test(path: Path, weight_format: str | None = None, determinism: str = "seed_only"):
    """`bioimageio test` on a zip (all weight formats, or one), offline; returns the ValidationSummary."""
    _quiet_bioimageio()
    from bioimageio.core import test_model

    return test_model(Path(path), weight_format=weight_format, devices=["cpu"], determinism=determinism)


def _versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("bioimageio.core", "bioimageio.spec", "torch", "onnxruntime")}


def _first_error(summary) -> str:
    for detail in summary.details:
        if detail.status != "passed":
            for err in detail.errors:
                first = str(err.msg).strip().splitlines()[0] if str(err.msg).strip() else "failed"
                return f"{detail.name}: {first}"[:300]
            return detail.name
    return "no detail"


def _quiet_bioimageio() -> None:
    """No log spam from bioimageio.* during export (its results are reported in our own words)."""
    try:
        from loguru import logger

        logger.disable("bioimageio")
    except Exception:  # loguru is a bioimageio dependency; nothing to do without it
        pass


def _sample_image(m, sample) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw image for the test/sample tensors, channels first ((C,) + spatial; single-channel without C),
    and its ground truth cropped alike (None when there is none):
    given, else a validation/training/QC image; a centred crop of at most SAMPLE_SIDES pixels per axis (a 2D
    model: YX, a 3D model: a ZYX crop) that the bundle's input sizes accept."""
    from ..data.io import channels_first, read_image_with_meta

    candidates = [(Path(sample), None)] if sample else []  # (image, its ground truth folder)
    if not sample:
        data = m.config.get("data") or {}
        root = Path(data["source"]) if data.get("source") else None
        truth = Path(data["target"]) if data.get("target") else None
        if root is not None:
            candidates += [(root / f, truth) for f in list(data.get("val_files") or []) + list(data.get("train_files")
                                                                                             or [])]
        qc = m.dir / "qc" / "summary.json"
        if qc.is_file():
            test_data = json.loads(qc.read_text(encoding="utf-8")).get("test_data") or {}
            if test_data.get("source"):
                truth = Path(test_data["target"]) if test_data.get("target") else None
                candidates += [(Path(test_data["source"]) / f, truth) for f in test_data.get("files", [])]
    path, truth_dir = next(((p, t) for p, t in candidates if p.is_file()), (None, None))
    if path is None:
        if sample:
            raise UserError(f"Sample image {sample} does not exist; give an image file like the training inputs.")
        raise UserError(f"No training or QC image of {m.dir} is reachable to make the bundle's test image; "
                        f"pass sample=IMAGE (--sample IMAGE) with one input image.")
    raw, meta = read_image_with_meta(path)
    raw = np.asarray(raw)
    axes = meta.axes if meta.origin != "rule" else m.image_axes(raw)
    want = m.geometry.axes
    spatial = "".join(a for a in axes if a != "C")
    channels = int(m.params.get("n_channels", 1))
    kind = "single-channel" if channels == 1 else f"{channels}-channel"
    if spatial != want:
        if len(spatial) < len(want):
            raise UserError(f"Sample image {path} is a 2D image (axes {axes}, shape {raw.shape}) but this "
                            f"{m.spec.name} model is a 3D network; pass a {kind} {want} stack like the training "
                            f"inputs with --sample.")
        if len(want) == 2 and spatial == "Z" + want:
            raise UserError(f"Sample image {path} is a 3D stack (axes {axes}, shape {raw.shape}) but this "
                            f"{m.spec.name} model is a 2D network; pass one {kind} 2D image like the training "
                            f"inputs with --sample (e.g. one plane of the stack saved as its own file).")
        raise UserError(f"Sample image {path} has axes {axes} (shape {raw.shape}); pass a {kind} {want} "
                        f"{'image' if len(want) == 2 else 'stack'} like the training inputs with --sample.")
    image = channels_first(raw, axes)
    have = image.shape[0] if "C" in axes else 1
    if have != channels:
        what = "2D" if len(want) == 2 else f"{want}"
        raise UserError(f"Sample image {path} has shape {raw.shape}; give a {what} {kind} "
                        f"{'image' if len(want) == 2 else 'stack'} like the training inputs.")
    if "C" in axes and channels == 1:
        image = image[0]
    g = m.geometry
    lows = tuple(2 * h + k for h, k in zip(g.halo, g.multiple))
    have_sizes = image.shape[-g.ndim:]
    if any(s < lo for s, lo in zip(have_sizes, lows)):
        raise UserError(f"Sample image {path} is {'x'.join(map(str, have_sizes))} pixels ({want}); the bundle's "
                        f"test image needs at least {'x'.join(map(str, lows))}; pass a larger sample image.")
    # valid sizes of the bundle's input axes: lo + n * multiple; at most the cap (but never below lo)
    sizes = tuple(lo + (min(s, max(cap, lo)) - lo) // k * k
                  for s, lo, k, cap in zip(have_sizes, lows, g.multiple, SAMPLE_SIDES[g.ndim]))
    starts = tuple((s - c) // 2 for s, c in zip(have_sizes, sizes))
    crop = tuple(slice(a, a + c) for a, c in zip(starts, sizes))
    truth = _ground_truth(truth_dir / path.name if truth_dir else None, have_sizes, crop)
    return image[(Ellipsis,) + crop], truth


def _ground_truth(path: Path | None, sizes: tuple, crop: tuple) -> np.ndarray | None:
    """The same crop of the image's ground truth (training target or QC truth), when it exists and fits."""
    from ..data.io import read_image

    if path is None or not path.is_file():
        return None
    truth = np.asarray(read_image(path))
    if truth.shape[-len(sizes):] != tuple(sizes):
        return None
    return truth[(Ellipsis,) + crop]
