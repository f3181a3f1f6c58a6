"""Percentile normalisation (CSBDeep's convention), and its inverse for outputs in the targets' units."""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def percentiles(image: np.ndarray, low: float, high: float, max_samples: int = 1 << 20) -> tuple[float, float]:
    """Low/high percentiles of an image (subsampled on a fixed grid for very large images)."""
    flat = np.asarray(image).ravel()
    if flat.size > max_samples:
        flat = flat[:: int(np.ceil(flat.size / max_samples))]
    lo, hi = np.percentile(flat, [low, high])
    return float(lo), float(hi)


def scale(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(x - lo) / (hi - lo) in float32."""
    return ((np.asarray(image, dtype=np.float32) - np.float32(lo)) / np.float32(max(hi - lo, EPS))).astype(np.float32)


def unscale(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of `scale`: back to the original units."""
    return (np.asarray(image, dtype=np.float32) * np.float32(max(hi - lo, EPS)) + np.float32(lo)).astype(np.float32)


class Normalizer:
    """The normalisation recorded in model.yaml: per-image percentiles for the source, and for
    restoration targets either the source image's own range (`source`) or one dataset range (`fixed`)."""

    def __init__(self, config: dict):
        self.source = config["source"]
        self.target = config.get("target")

    def source_range(self, image: np.ndarray) -> tuple[float, float]:
        return percentiles(image, self.source["low"], self.source["high"])

    def target_range(self, source_range: tuple[float, float]) -> tuple[float, float]:
        if self.target is None or self.target["method"] == "source":
            return source_range
        return float(self.target["low"]), float(self.target["high"])

    def as_dict(self) -> dict:
        out = {"source": dict(self.source)}
        if self.target is not None:
            out["target"] = dict(self.target)
        return out


def fit_normalizer(params: dict, targets: list[np.ndarray] | None, method: str | None) -> Normalizer:
    """Build the normaliser for training; a `fixed` target range is taken over all training targets."""
    config = {"source": {"method": "percentile", "low": float(params["norm_low"]), "high": float(params["norm_high"])}}
    if method == "fixed":
        samples = np.concatenate([np.asarray(t, np.float32).ravel()[:: max(1, t.size // 200_000)] for t in targets])
        lo, hi = np.percentile(samples, [params["norm_low"], params["norm_high"]])
        config["target"] = {"method": "fixed", "low": float(lo), "high": float(hi)}
    elif method == "source":
        config["target"] = {"method": "source"}
    return Normalizer(config)
