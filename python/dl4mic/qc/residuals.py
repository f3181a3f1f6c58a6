"""QC of a denoising without ground truth: what the model removed (the residual input - prediction),
an estimate of the input's noise level, and spectral peaks that betray grid (checkerboard) artefacts.
Pure numpy/scipy functions (no model, no files), shared by `dl4mic qc` and benchmarks.

Inputs are one channel: an image (Y, X) or a volume (Z, Y, X), told apart by `ndim`. Volumes are scored
plane by plane where the 2D method has no 3D twin (noise level, spectra: middle plane), since Z is often
sampled more coarsely than Y and X."""

from __future__ import annotations

import numpy as np

from . import plots

def middle_plane(image: np.ndarray) -> np.ndarray:
    """The middle Z plane of a volume (Z, Y, X); an image (Y, X) as it is."""
    a = np.asarray(image)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an image (Y, X) or a volume (Z, Y, X), not shape {a.shape}")
    return a[a.shape[0] // 2] if a.ndim == 3 else a


NYQUIST_FRACTIONS = ((0.5, 0.0), (0.0, 0.5), (0.5, 0.5), (0.25, 0.0), (0.0, 0.25), (0.25, 0.25),
                     (0.25, 0.5), (0.5, 0.25))


def power_spectrum(image: np.ndarray) -> np.ndarray:
    """Centred 2D power spectrum of an image (mean removed, Hann window against edge leakage); of a volume's
    middle Z plane (grid artefacts of 2D-patch networks lie in the planes)."""
    a = np.asarray(middle_plane(image), np.float64)
    a = a - a.mean()
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    return np.fft.fftshift(np.abs(np.fft.fft2(a * win)) ** 2)


def checkerboard_peak(image: np.ndarray, radius: int = 3) -> float:
    """How much the power at the periods of 2 and 4 pixels stands above its neighbourhood in the spectrum:
    the largest ratio (power within 1 bin of such a frequency) / (median power of the ring around it).
    About 1 for images without grid artefacts; Noise2Void's checkerboard artefacts give clear peaks.
    A volume is judged on its middle Z plane (`power_spectrum`)."""
    ps = power_spectrum(image)
    h, w = ps.shape
    if min(h, w) < 16:
        return float("nan")
    cy, cx = h // 2, w // 2
    best = 0.0
    for fy, fx in NYQUIST_FRACTIONS:
        for sy in (1, -1):
            y, x = cy + int(round(sy * fy * h)), cx + int(round(fx * w))
            y, x = min(max(y, 0), h - 1), min(max(x, 0), w - 1)
            ys, xs = np.ogrid[:h, :w]
            # wrap-around distance so peaks at the spectrum's border (Nyquist) have a full ring
            d = np.maximum(np.minimum(np.abs(ys - y), h - np.abs(ys - y)), np.minimum(np.abs(xs - x), w - np.abs(xs - x)))
            peak = ps[d <= 1].max()
            ring = ps[(d > 1) & (d <= radius + 1)]
            if ring.size:
                best = max(best, float(peak / max(np.median(ring), 1e-30)))
    return best


def _lag1_correlation(a: np.ndarray) -> float:
    """Mean correlation of neighbouring pixels along every axis (X and Y; and Z for a volume): about 0 for
    white noise, high for structure. Axes with a single pixel have no neighbours and are left out."""
    a = np.asarray(a, np.float64) - np.mean(a)
    den = float((a * a).mean())
    axes = [ax for ax in range(a.ndim) if a.shape[ax] > 1]
    if den <= 0 or not axes:
        return float("nan")
    lag = [(np.take(a, range(1, a.shape[ax]), ax) * np.take(a, range(a.shape[ax] - 1), ax)).mean() for ax in axes]
    return float(np.mean(lag) / den)


def noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of additive white noise, estimated from one image (Immerkaer 1996: the mean absolute
    response to a Laplacian difference mask that cancels smooth signal). A volume's estimate is the mean of
    its Z planes' 2D estimates: the 2D mask needs no assumption about the (often coarser) Z sampling."""
    from scipy import ndimage

    a = np.asarray(image, np.float64)
    if a.ndim == 3:
        return float(np.mean([noise_sigma(plane) for plane in a]))
    if min(a.shape) < 3:
        return float("nan")
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    r = ndimage.convolve(a, k, mode="reflect")[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(r).mean() / 6.0)


def residual_statistics(source: np.ndarray, prediction: np.ndarray) -> dict:
    """Scores of a denoising without ground truth, from the input and its prediction only.

    residual = input - prediction is what the model removed. For a good denoiser it looks like the noise:
    mean near 0, std near the input's noise level (`noise_sigma`, estimated from the input alone),
    little correlation between neighbouring pixels and none with the prediction. Structure in the residual
    (high `residual_lag1`, `residual_prediction_corr`) means signal was removed too.
    Images or volumes (see the functions used for how volumes are scored)."""
    s, p = np.asarray(source, np.float64), np.asarray(prediction, np.float64)
    r = s - p
    corr = np.corrcoef(r.ravel(), p.ravel())[0, 1] if r.std() > 0 and p.std() > 0 else float("nan")
    return {"residual_mean": float(r.mean()), "residual_std": float(r.std()),
            "noise_sigma": noise_sigma(s), "input_std": float(s.std()), "prediction_std": float(p.std()),
            "residual_lag1": _lag1_correlation(r), "residual_prediction_corr": float(corr),
            "input_checkerboard": checkerboard_peak(s), "prediction_checkerboard": checkerboard_peak(p)}


def denoising_figure(name: str, source, prediction, stats: dict | None = None):
    """Input, prediction (same contrast), residual and the residual's power spectrum (log) of one image;
    of a volume's middle Z plane (contrast limits from the whole volume), as the titles say."""
    from matplotlib.figure import Figure

    src, pred = np.asarray(source, np.float64), np.asarray(prediction, np.float64)
    res = src - pred
    (view, s), (_, p), (_, r) = (plots.views(a)[0] for a in (src, pred, res))  # 2D as is; volume: middle plane
    def t(what):
        return plots._title(what, view)

    fig = Figure(figsize=(12, 3.4 if view else 3.2))
    axes = fig.subplots(1, 4, gridspec_kw={"left": 0.01, "right": 0.97, "top": 0.78 if view else 0.82,
                                           "bottom": 0.02, "wspace": 0.3})
    lo, hi = plots._limits(src)
    rl = float(np.percentile(np.abs(res), 99.5)) or 1.0
    plots._show(axes[0], s, t("input"), vmin=lo, vmax=hi)
    plots._show(axes[1], p, t("prediction (input's contrast)"), vmin=lo, vmax=hi)
    plots._show(axes[2], r, t("residual: input - prediction"), cmap="RdBu_r", vmin=-rl, vmax=rl, colorbar=True)
    plots._show(axes[3], np.log10(power_spectrum(pred) + 1e-12), t("prediction power spectrum (log)"),
                cmap="magma")
    text = name
    if stats:
        text += (f"   residual std {stats['residual_std']:.3g} (noise estimate {stats['noise_sigma']:.3g})"
                 f"   neighbour corr. {stats['residual_lag1']:.2f}   grid peak {stats['prediction_checkerboard']:.1f}")
    fig.suptitle(text, fontsize=9)
    return fig
