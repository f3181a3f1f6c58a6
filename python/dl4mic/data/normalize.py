"""Input normalisation, and its inverse for outputs in the targets' units.

Two source methods: `percentile` (CSBDeep's convention: each image's low/high percentiles map to 0/1)
and `meanstd` (Noise2Void's: one mean and standard deviation over all training images map every image
to zero mean, unit variance). Both are a linear map x -> (x - lo) / (hi - lo), so networks, tiling and
the inverse only ever see a (lo, hi) pair per image."""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def percentiles(image: np.ndarray, low: float, high: float, max_samples: int = 1 << 20,
                spatial_dims: int = 2) -> tuple:
    """Low/high percentiles of a single-channel image or stack (`spatial_dims` axes: one pair for the whole
    volume, never plane by plane), or per channel of a channels-first one as (C, 1, ...) arrays
    (subsampled on a fixed grid for very large images)."""
    image = np.asarray(image)
    if image.ndim > spatial_dims:
        pairs = [percentiles(plane, low, high, max_samples, spatial_dims) for plane in image]
        return tuple(np.array([p[i] for p in pairs], np.float32).reshape((-1,) + (1,) * spatial_dims)
                     for i in (0, 1))
    flat = image.ravel()
    if flat.size > max_samples:
        flat = flat[:: int(np.ceil(flat.size / max_samples))]
    lo, hi = np.percentile(flat, [low, high])
    return float(lo), float(hi)


def scale(image: np.ndarray, lo, hi) -> np.ndarray:
    """(x - lo) / (hi - lo) in float32 (lo, hi: numbers, or (C, 1, 1) arrays for channels-first images)."""
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    return ((np.asarray(image, dtype=np.float32) - lo) / np.maximum(hi - lo, np.float32(EPS))).astype(np.float32)


def unscale(image: np.ndarray, lo, hi) -> np.ndarray:
    """Inverse of `scale`: back to the original units."""
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    return (np.asarray(image, dtype=np.float32) * np.maximum(hi - lo, np.float32(EPS)) + lo).astype(np.float32)


class Normalizer:
    """The normalisation recorded in model.yaml: per-image percentiles for the source, and for
    restoration targets either the source image's own range (`source`) or one dataset range (`fixed`)."""

    def __init__(self, config: dict, spatial_dims: int = 2):
        self.source = config["source"]
        self.target = config.get("target")
        self.spatial_dims = spatial_dims

    def source_range(self, image: np.ndarray) -> tuple:
        """(lo, hi) that `scale` maps to (0, 1): numbers, or (C, 1, ...) arrays for multichannel models."""
        if self.source.get("method") == "meanstd":
            mean, std = self.source["mean"], self.source["std"]
            if isinstance(mean, list):
                shape = (-1,) + (1,) * self.spatial_dims
                mean, std = (np.array(v, np.float32).reshape(shape) for v in (mean, std))
                return mean, mean + std
            return float(mean), float(mean) + float(std)
        return percentiles(image, self.source["low"], self.source["high"], spatial_dims=self.spatial_dims)

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


def _mean_std(sources: list[np.ndarray], spatial_dims: int = 2) -> tuple:
    """Mean and standard deviation over all sources: numbers, or per-channel lists for channels-first images."""
    if sources[0].ndim > spatial_dims:
        stats = [_mean_std([s[c] for s in sources], spatial_dims) for c in range(sources[0].shape[0])]
        return [m for m, _ in stats], [s for _, s in stats]
    samples = _samples(sources).astype(np.float64)
    return float(samples.mean()), max(float(samples.std()), EPS)


def describe(norm: dict) -> str:
    """One phrase for reports and READMEs."""
    if norm.get("method") == "meanstd":
        def g(v):
            return ", ".join(f"{x:.6g}" for x in v) if isinstance(v, list) else f"{v:.6g}"

        return f"dataset mean {g(norm['mean'])} and standard deviation {g(norm['std'])} (zero mean, unit variance)"
    if norm.get("method") == "fixed":
        return f"fixed range {norm['low']:.6g} \u2192 0 and {norm['high']:.6g} \u2192 1"
    return f"per image, percentiles {norm['low']:g} \u2192 0 and {norm['high']:g} \u2192 1"


def fit_normalizer(params: dict, targets: list[np.ndarray] | None, method: str | None,
                   sources: list[np.ndarray] | None = None, spatial_dims: int = 2) -> Normalizer:
    """Build the normaliser for training: per-image percentiles, or (`sources` given) the mean and standard
    deviation of all training sources; a `fixed` target range is taken over all training targets."""
    if sources is not None:
        mean, std = _mean_std(sources, spatial_dims)
        config = {"source": {"method": "meanstd", "mean": mean, "std": std}}
    else:
        config = {"source": {"method": "percentile", "low": float(params["norm_low"]),
                             "high": float(params["norm_high"])}}
    if method == "fixed":
        lo, hi = np.percentile(_samples(targets), [params["norm_low"], params["norm_high"]])
        config["target"] = {"method": "fixed", "low": float(lo), "high": float(hi)}
    elif method == "source":
        config["target"] = {"method": "source"}
    return Normalizer(config, spatial_dims)
