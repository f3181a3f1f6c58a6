"""Input normalisation, and its inverse for outputs in the targets' units.

Two source methods: `percentile` (CSBDeep's convention: each image's low/high percentiles map to 0/1)
and `meanstd` (Noise2Void's: one mean and standard deviation over all training images map every image
to zero mean, unit variance). Both are a linear map x -> (x - lo) / (hi - lo), so networks, tiling and
the inverse only ever see a (lo, hi) pair per image."""

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
        if self.source.get("method") == "meanstd":
            return float(self.source["mean"]), float(self.source["mean"]) + float(self.source["std"])
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


def _samples(images: list[np.ndarray], per_image: int = 200_000) -> np.ndarray:
    return np.concatenate([np.asarray(t, np.float32).ravel()[:: max(1, t.size // per_image)] for t in images])


def describe(norm: dict) -> str:
    """One phrase for reports and READMEs."""
    if norm.get("method") == "meanstd":
        return (f"dataset mean {norm['mean']:.6g} and standard deviation {norm['std']:.6g} "
                f"(zero mean, unit variance)")
    if norm.get("method") == "fixed":
        return f"fixed range {norm['low']:.6g} \u2192 0 and {norm['high']:.6g} \u2192 1"
    return f"per image, percentiles {norm['low']:g} \u2192 0 and {norm['high']:g} \u2192 1"


def fit_normalizer(params: dict, targets: list[np.ndarray] | None, method: str | None,
                   sources: list[np.ndarray] | None = None) -> Normalizer:
    """Build the normaliser for training: per-image percentiles, or (`sources` given) the mean and standard
    deviation of all training sources; a `fixed` target range is taken over all training targets."""
    if sources is not None:
        samples = _samples(sources).astype(np.float64)
        config = {"source": {"method": "meanstd", "mean": float(samples.mean()),
                             "std": max(float(samples.std()), EPS)}}
    else:
        config = {"source": {"method": "percentile", "low": float(params["norm_low"]),
                             "high": float(params["norm_high"])}}
    if method == "fixed":
        lo, hi = np.percentile(_samples(targets), [params["norm_low"], params["norm_high"]])
        config["target"] = {"method": "fixed", "low": float(lo), "high": float(hi)}
    elif method == "source":
        config["target"] = {"method": "source"}
    return Normalizer(config)
