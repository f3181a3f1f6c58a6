#!/usr/bin/env python3
"""Noise2Void on real fluorescence noise: N2V and N2V2 trained on the noisy FMD images alone.

    .venv/bin/python benchmarks/n2v2d/fmd.py                  # 20 epochs x 50 steps x batch 32 x 64x64
    .venv/bin/python benchmarks/n2v2d/fmd.py --epochs 5 --steps 10

Data: ../shared/data/fmd_confocal_bpae_b (FMD confocal BPAE, 16 training fields of view, 2 test
fields; `noisy` single acquisitions, `clean` the average of 50).  Each variant trains with dl4mic's
defaults on `train/noisy` only (no clean image is ever seen), predicts `test/noisy`, and is scored
against `test/clean`: PSNR (range 255, predictions not clipped) next to the noisy input's, and the
checkerboard test -- `dl4mic.qc.residuals.checkerboard_peak`, the largest ratio of spectral power at the
periods of 2 and 4 pixels to its ring, for the prediction, the clean image and the error
(prediction - clean).  Clean images score about 5-8; N2V's checkerboard shows as much larger peaks.
A figure shows each prediction beside the log power spectra of its error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402

DEFAULT_DATA = common.REPO_DIR.parent / "shared" / "data" / "fmd_confocal_bpae_b"


def figure(panels: list, path: Path, crop: int = 96) -> None:
    """Per prediction: a zoom on its brightest region (where grid artefacts show) and the log power spectrum
    of its error, where a checkerboard would be bright spots at the border and half-way to it."""
    import matplotlib
    import numpy as np
    from scipy import ndimage

    from dl4mic.qc.residuals import power_spectrum

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(panels), figsize=(3.2 * len(panels), 6.6))
    for col, (title, pred, clean) in enumerate(panels):
        cy, cx = np.unravel_index(np.argmax(ndimage.uniform_filter(clean, crop)), clean.shape)
        y0 = int(np.clip(cy - crop // 2, 0, clean.shape[0] - crop))
        x0 = int(np.clip(cx - crop // 2, 0, clean.shape[1] - crop))
        zoom = pred[y0:y0 + crop, x0:x0 + crop]
        lo, hi = np.percentile(zoom, [1, 99.8])
        axes[0, col].imshow(zoom, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        axes[0, col].set_title(f"{title} (zoom)", fontsize=8)
        axes[1, col].imshow(np.log10(power_spectrum(pred - clean) + 1e-12), cmap="magma")
        axes[1, col].set_title("log power spectrum of prediction - clean", fontsize=7)
        for ax in axes[:, col]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--workdir", type=Path, help="keep the models here (default: a temporary folder)")
    a = ap.parse_args(argv)
    common.set_torch_threads(a.threads)

    import numpy as np

    import dl4mic
    from dl4mic.data.io import read_image, write_tiff
    from dl4mic.qc.residuals import checkerboard_peak

    work = a.workdir or Path(tempfile.mkdtemp(prefix="dl4mic-fmd-n2v-"))
    test_names = sorted(p.name for p in (a.data / "test" / "noisy").iterdir() if p.suffix == ".tif")
    load = {"start": common.load_average()}
    runs, figures = [], []
    for variant in ("n2v", "n2v2"):
        t0 = time.perf_counter()
        model = dl4mic.train("n2v2d", source=a.data / "train" / "noisy", model=work / variant, overwrite=True,
                             epochs=a.epochs, params={"variant": variant, "steps_per_epoch": a.steps,
                                                      "batch_size": a.batch_size}, progress="none")
        train_s = time.perf_counter() - t0
        m = dl4mic.predict.model.load_model(model)
        images = {}
        for name in test_names:
            noisy = read_image(a.data / "test" / "noisy" / name).astype(np.float32)
            clean = read_image(a.data / "test" / "clean" / name).astype(np.float32)
            pred = m.predict(noisy)["restored"]
            write_tiff(work / f"{variant}_{name}", pred)
            images[name] = {"psnr_noisy": common.psnr(noisy, clean, 255.0),
                            "psnr_pred": common.psnr(pred, clean, 255.0),
                            "checker_pred": checkerboard_peak(pred), "checker_clean": checkerboard_peak(clean),
                            "checker_error": checkerboard_peak(pred - clean)}
            figures.append((f"{variant} {name}", pred, clean))
        runs.append({"variant": variant, "train_s": train_s, "images": images,
                     **{f"mean_{k}": float(np.mean([v[k] for v in images.values()]))
                        for k in ("psnr_noisy", "psnr_pred", "checker_pred", "checker_clean", "checker_error")}})
        print(f"{variant}: {runs[-1]['mean_psnr_pred']:.2f} dB (noisy {runs[-1]['mean_psnr_noisy']:.2f} dB), "
              f"checkerboard peak of the error {runs[-1]['mean_checker_error']:.1f}", file=sys.stderr, flush=True)
    load["end"] = common.load_average()

    a.results.mkdir(parents=True, exist_ok=True)
    stem = f"{dt.date.today().isoformat()}-fmd"
    figure(figures, a.results / f"{stem}.png")
    result = {**common.result_header("n2v2d on fmd_confocal_bpae_b, trained on the noisy images only", load),
              "settings": {"data": str(a.data), "epochs": a.epochs, "steps": a.steps, "batch_size": a.batch_size,
                           "threads": a.threads, "other": "dl4mic n2v2d defaults"},
              "runs": runs, "figure": f"{stem}.png"}
    common.write_json(a.results / f"{stem}.json", result)
    for r in runs:
        print(f"{r['variant']:5s} PSNR {r['mean_psnr_pred']:.2f} dB (noisy {r['mean_psnr_noisy']:.2f}); checkerboard "
              f"peak: prediction {r['mean_checker_pred']:.1f}, clean {r['mean_checker_clean']:.1f}, "
              f"error {r['mean_checker_error']:.1f}; training {r['train_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
