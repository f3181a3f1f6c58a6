"""A dl4mic bundle's attachments, and the way back from a bundle zip to a dl4mic model folder (for
`dl4mic predict BUNDLE.zip` and `train --from BUNDLE.zip`). A leaf module: predict and training import it
without importing the exporter."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from ..data.io import staging_folder
from ..errors import UserError
from .extract import cache_root, safe_extract, sha256_file

# attachments that make a bundle a dl4mic model folder again (flat names: packaging flattens paths)
MODEL_YAML = "dl4mic_model_config.yaml"  # not *model.yaml: bioimageio reserves that suffix
QC_SUMMARY = "dl4mic_qc_summary.json"
TRAINING_LOG = "dl4mic_training_log.csv"
STATE_DICT = "weights.pt"


def model_dir_from_bundle(zip_path) -> Path:
    """The dl4mic model folder inside a dl4mic bundle, extracted safely into the bundle cache
    (`$DL4MIC_CACHE/bundles/<sha256>/`, default ~/.cache/dl4mic/bundles); reused on later calls."""
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise UserError(f"{zip_path} does not exist; give a bioimage.io bundle zip or a model folder.")
    root = cache_root() / sha256_file(zip_path)[:32]
    model_dir = root / "model"
    if (model_dir / "model.yaml").is_file() and (model_dir / "weights" / "best.pt").is_file():
        return model_dir
    bundle = root / "bundle"
    if not bundle.is_dir():
        safe_extract(zip_path, bundle)
    rdf_path = next((bundle / n for n in ("rdf.yaml", "bioimageio.yaml") if (bundle / n).is_file()), None)
    if rdf_path is None:
        raise UserError(f"{zip_path} has no rdf.yaml; it is not a bioimage.io model bundle.")
    if not (bundle / MODEL_YAML).is_file() or not (bundle / STATE_DICT).is_file():
        raise UserError(f"{zip_path} was not exported by dl4mic (no {MODEL_YAML} inside); dl4mic predicts and "
                        f"fine-tunes its own bundles — run foreign bundles in DeepImageJ or bioimageio.core.")
    tmp = staging_folder(model_dir)
    try:
        (tmp / "weights").mkdir()
        shutil.copyfile(bundle / MODEL_YAML, tmp / "model.yaml")
        shutil.copyfile(bundle / STATE_DICT, tmp / "weights" / "best.pt")
        if (bundle / TRAINING_LOG).is_file():
            (tmp / "training").mkdir()
            shutil.copyfile(bundle / TRAINING_LOG, tmp / "training" / "log.csv")
        if (bundle / QC_SUMMARY).is_file():
            (tmp / "qc").mkdir()
            shutil.copyfile(bundle / QC_SUMMARY, tmp / "qc" / "summary.json")
        with open(tmp / "model.yaml", encoding="utf-8") as fh:
            config = yaml.safe_load(fh) or {}
        if "network" not in config:
            raise UserError(f"{zip_path} carries a damaged {MODEL_YAML} (no network); export the model again.")
        if model_dir.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, model_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return model_dir
