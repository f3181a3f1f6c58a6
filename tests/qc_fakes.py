"""Tiny synthetic model folders and fake models honouring the load_model contract (for QC and report tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import yaml

from dl4mic.specs import load_spec


def blobs(rng, shape=(48, 48), n=5):
    """Bright discs on a dark background (uint8) and their labels."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    for i in range(1, n + 1):
        cy, cx = rng.integers(8, shape[0] - 8), rng.integers(8, shape[1] - 8)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(9, 25)] = i
    clean = np.where(labels > 0, 180, 30).astype(np.float64)
    return clean, labels


def write_pairs(folder: Path, n: int, kind: str, seed: int = 0) -> tuple[Path, Path]:
    """source/ and target/ with n pairs: noisy -> clean (restoration) or image -> mask (segmentation)."""
    rng = np.random.default_rng(seed)
    src, tgt = folder / "source", folder / "target"
    src.mkdir(parents=True), tgt.mkdir(parents=True)
    for i in range(n):
        clean, labels = blobs(rng)
        noisy = np.clip(clean + rng.normal(0, 40, clean.shape), 0, 255).astype(np.uint8)
        tifffile.imwrite(src / f"img{i}.tif", noisy)
        if kind == "restoration":
            target = clean.astype(np.uint8)
        elif kind == "segmentation":
            target = ((labels > 0) * 255).astype(np.uint8)
        else:
            target = labels
        tifffile.imwrite(tgt / f"img{i}.tif", target)
    return src, tgt


def model_folder(root: Path, network: str, with_log: bool = True, status: str = "finished") -> Path:
    spec = load_spec(network)
    d = root / f"{network}_model"
    (d / "training").mkdir(parents=True)
    config = {
        "dl4mic_version": "0.1.0", "format": 1, "name": d.name, "network": network, "task": spec.task,
        "created": "2026-11-23T08:00:00+00:00",
        "parameters": {**spec.defaults(), "epochs": 3},
        "axes": "YX",
        "normalization": {"source": {"method": "percentile", "low": 1.0, "high": 99.8}},
        "data": {"source": "/data/source", "target": "/data/target", "train_files": [f"t{i}.tif" for i in range(30)],
                 "val_files": ["v0.tif"], "n_pairs": 31, "shapes": [[48, 48]] * 31, "source_dtype": "uint8"},
        "environment": {"python": "3.11", "torch": "2.x", "numpy": np.__version__, "device": "cpu", "threads": 2},
        "transfer_from": None,
        "training": {"status": status, "started": "2026-11-23T08:00:00+00:00"},
    }
    if spec.task == "restoration":
        config["target_dtype"] = "uint8"
        config["normalization"]["target"] = {"method": "fixed", "low": 30.0, "high": 180.0}
    else:
        config["threshold"] = 0.5
    if with_log:
        config["training"].update({"status": "finished", "finished": "2026-11-23T08:05:00+00:00", "seconds": 300.5,
                                   "epochs_done": 3, "best_epoch": 2, "best_val_loss": 0.1})
        (d / "training" / "log.csv").write_text(
            "epoch,loss,val_loss,lr,seconds\n1,0.5,0.4,0.0004,100\n2,0.3,0.1,0.0004,100\n3,0.2,0.15,0.0004,100\n")
    (d / "model.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return d


class FakeModel:
    """Honours dl4mic.predict.model.load_model's contract with a fixed, simple 'network'."""

    def __init__(self, model_dir: Path, task: str | None = None):
        self.dir = Path(model_dir)
        self.config = yaml.safe_load((self.dir / "model.yaml").read_text())
        self.spec = load_spec(self.config["network"])
        self.task = task or self.config["task"]

    def predict(self, image, axes=None):
        from scipy.ndimage import gaussian_filter, label

        smooth = gaussian_filter(image.astype(np.float32), 1.5)
        if self.task == "restoration":
            return {"restored": smooth}
        prob = np.clip((smooth - 60) / 80, 0, 1).astype(np.float32)
        mask = prob >= self.config.get("threshold", 0.5)
        return {"probability": prob, "mask": (mask * 255).astype(np.uint8), "labels": label(mask)[0].astype(np.uint16)}
