#!/usr/bin/env python3
"""Noise2Void 2D: dl4mic (PyTorch) against the reference, CAREamics (PyTorch Lightning), in one run.

    .venv/bin/python benchmarks/n2v2d/run.py --quick            # smoke test, a few minutes
    .venv/bin/python benchmarks/n2v2d/run.py                    # 8 epochs x 20 steps x 32 x 64x64
    .venv/bin/python benchmarks/n2v2d/run.py --variant n2v2 --epochs 20

Data: BSD400 (training) and BSD68 (test) from ../shared/data/bsd400_bsd68_gray, the
Noise2Void paper's natural-image benchmark (Krull et al. 2019, Table 1: N2V 27.71 dB at
sigma 25 after a full-length training).  Training images get Gaussian noise of sigma 25
(float32, not clipped, seed 4_000_000 + k for the k-th file) and are written as float32
TIFFs to the work folder; the noisy test images are made exactly as the data README says
(`clean + default_rng(68000 + k).normal(0, 25)`, float32, not clipped).  Both sides train on
the noisy training images only; PSNR is measured against the clean test images (range 255).

What is the same on both sides
  * data: dl4mic's training files (its split, read back from model.yaml) are the reference's
    training array; the reference validates on the raw pixels of exactly dl4mic's validation
    patches (dl4mic's sampler re-run with its seed);
  * epochs, steps per epoch, batch size, patch size, random flips/90-degree rotations;
  * N2V settings: variant (n2v or n2v2), 0.198 % masked pixels, 11x11 neighbourhood;
  * network: U-Net depth 2, 32 first-level filters, batch norm; Adam at the same learning rate,
    ReduceLROnPlateau(0.5, patience 10);
  * normalisation: one mean / standard deviation over the training images (each side computes its own);
  * threads: both processes get the same thread count; data loading in the main process.
What differs (each side's own defaults): the U-Net's decoder details (CAREamics: bilinear up-sampling and
a wider bottleneck; the parameter counts are reported), dl4mic's `precision: auto` (bfloat16
autocast on CPUs with AVX-512-BF16/AMX; CAREamics trains in float32; --precision float32 puts
both in float32), the weights used for prediction (dl4mic: best validation loss; CAREamics: the
last epoch, its rule for N2V), and the reference predicts whole images, dl4mic in its default tiles.
Peak RSS is each subprocess's ru_maxrss (training + prediction).  Seconds per epoch include
validation and checkpoint writes on both sides; the first epoch is reported separately.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402

DEFAULT_DATA = common.REPO_DIR.parent / "shared" / "data" / "bsd400_bsd68_gray"
PAPER_PSNR = 27.71  # Krull et al., CVPR 2019, Table 1, BSD68 sigma 25
TORCH_PIN = "torch==2.13.0"
# CAREamics 0.3.5 pins torchvision<=0.26 (built for an older torch): it is installed without its
# dependencies beside the local CPU torch, and its missing C++ op is declared in side_careamics.py.
REFERENCE_DEPS = [TORCH_PIN, "bioimageio-core>=0.9.0,<=0.11.0", "lightning>=2.2,<=2.6.6,!=2.6.2,!=2.6.3",
                  "matplotlib<=3.11.2", "microssim<=0.0.5", "numpy>=1.21,<=2.4.6", "pillow<=13.0.0",
                  "psutil<=7.2.2", "pydantic>=2.11,<=2.14.1", "pyyaml!=6.0.0,<=6.0.3", "scikit-image<=0.26.0",
                  "tifffile<=2026.3.3", "torchmetrics>0.7.0,<1.9.0", "zarr>=3.0.0,<4.0.0"]
REFERENCE_NO_DEPS = ["careamics==0.3.5", "torchvision==0.26.0"]
EPOCH_SUMMARY_KEYS = ("first_epoch_s", "median_epoch_s", "final_loss", "best_val_loss")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, help="epochs (default 8; --quick: 2)")
    ap.add_argument("--steps", type=int, help="steps per epoch (default 20; --quick: 5)")
    ap.add_argument("--batch-size", type=int, help="patches per step (default 32; --quick: 16)")
    ap.add_argument("--patch-size", type=int, default=64)
    ap.add_argument("--variant", default="n2v", choices=["n2v", "n2v2"])
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 epochs x 5 steps x 16, 8 test images")
    ap.add_argument("--n-test", type=int, help="score only the first N test images (default all; --quick: 8)")
    ap.add_argument("--threads", type=int, default=2, help="compute threads for each side (default 2)")
    ap.add_argument("--precision", default=None, choices=["auto", "float32", "bfloat16"],
                    help="dl4mic's training arithmetic (default: dl4mic's own default, auto)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder with train/images and test/clean (default: %(default)s)")
    ap.add_argument("--sigma", type=float, default=25.0)
    ap.add_argument("--venv", type=Path, default=common.BENCH_DIR / ".venv-careamics",
                    help="virtual environment of the reference (created if missing)")
    ap.add_argument("--skip-reference", action="store_true", help="dl4mic side only")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--workdir", type=Path, help="keep models, data and logs here (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="do not delete the temporary work folder")
    a = ap.parse_args(argv)
    a.epochs = a.epochs or (2 if a.quick else 8)
    a.steps = a.steps or (5 if a.quick else 20)
    a.batch_size = a.batch_size or (16 if a.quick else 32)
    if a.n_test is None and a.quick:
        a.n_test = 8
    return a


log = common.make_log("n2v2d")


def ensure_reference(path: Path) -> Path:
    """benchmarks/.venv-careamics: CAREamics 0.3.5 beside the local CPU torch (two pip calls)."""
    return common.ensure_venv(path, REFERENCE_DEPS, log=log, no_deps=REFERENCE_NO_DEPS,
                              what="CAREamics 0.3.5 and its dependencies")


def make_data(a, work: Path) -> dict:
    """Noisy float32 training TIFFs (seeded) and the README's noisy test images."""
    import numpy as np

    from dl4mic.data.io import read_image, write_tiff

    train_dir, test_dir = work / "train_noisy", work / "test_noisy"
    clean_train = sorted((a.data / "train" / "images").glob("*.tif"))
    clean_test = sorted((a.data / "test" / "clean").glob("*.tif"))
    if not clean_train or not clean_test:
        raise SystemExit(f"{a.data} lacks train/images/*.tif or test/clean/*.tif")
    for k, f in enumerate(clean_train):
        clean = read_image(f)
        noise = np.random.default_rng(4_000_000 + k).normal(0, a.sigma, clean.shape).astype(np.float32)
        write_tiff(train_dir / f.name, clean.astype(np.float32) + noise)
    tests = []
    for k, f in enumerate(clean_test):  # k counts over all BSD68 files, as the README defines the noise
        if a.n_test is not None and k >= a.n_test:
            break
        clean = read_image(f)
        noisy = clean.astype(np.float32) + np.random.default_rng(68000 + k).normal(0, a.sigma, clean.shape).astype(np.float32)
        write_tiff(test_dir / f.name, noisy)
        tests.append(f.name)
    return {"train": train_dir, "test": test_dir, "clean_test": a.data / "test" / "clean", "test_files": tests}


def dl4mic_params(a) -> dict:
    p = {"variant": a.variant, "steps_per_epoch": a.steps, "batch_size": a.batch_size, "patch_size": a.patch_size,
         "depth": 2, "filters": 32, "kernel_size": 3, "batch_norm": True, "learning_rate": 4e-4,
         "masked_pixel_percentage": 0.198, "neighborhood_radius": 5, "val_split": 0.1, "val_patches": 128,
         "augment": True, "seed": a.seed, "lr_patience": 10, "lr_factor": 0.5, "epochs": a.epochs}
    if a.precision:
        p["precision"] = a.precision
    return p


def reference_inputs(model_dir: Path, source: Path, test_dir: Path, test_files: list[str], out: Path) -> dict:
    """Raw arrays for CAREamics: dl4mic's training files and the raw pixels of its validation patches."""
    import numpy as np

    from dl4mic.data.io import read_image
    from dl4mic.data.patches import ImageCache, PatchSampler, fixed_batches
    from dl4mic.data.sources import FolderPairs
    from dl4mic.networks import get_network
    from dl4mic.predict.model import read_model_config
    from dl4mic.specs import load_spec

    cfg = read_model_config(model_dir)
    p = cfg["parameters"]
    data = FolderPairs(load_spec(cfg["network"]), source, params=p)
    patch = get_network(cfg["network"]).geometry(p).patch
    data.split(p["val_split"], p["seed"], patch)
    summary, pairs = data.summary, data.summary.pairs
    train_regions, val_regions = data.train_regions, data.val_regions
    train_names = sorted({pairs[r.index][0].name for r in train_regions})
    if train_names != cfg["data"]["train_files"]:
        raise SystemExit("could not reproduce dl4mic's train/validation split from model.yaml")
    raw = ImageCache(data.load, lambda s, t: (np.asarray(s, np.float32), None), 1 << 40)
    batches = fixed_batches(PatchSampler(val_regions, summary.shapes, raw, patch,
                                         np.random.default_rng(p["seed"] + 1)), p["val_patches"], p["batch_size"])
    arrays = {"train": np.stack([raw.get(r.index)[0] for r in train_regions]),
              "val": np.concatenate([b[0] for b in batches])[:, 0]}
    for i, name in enumerate(test_files):
        arrays[f"test/{i}"] = read_image(test_dir / name).astype(np.float32)
    np.savez(out, **arrays)
    return {"config": cfg, "train_files": train_names, "val_files": cfg["data"]["val_files"],
            "val_patches": int(arrays["val"].shape[0])}


def main(argv=None) -> int:
    a = parse_args(argv)
    ref_python = None if a.skip_reference else ensure_reference(a.venv)
    work = common.work_folder(a.workdir, "dl4mic-n2v2d-bench-", log)
    data = make_data(a, work)
    env = common.thread_env(a.threads)
    load = {"start": common.load_average()}
    params = dl4mic_params(a)

    model_dir = work / "dl4mic_model"
    cfg_d = {"source": str(data["train"]), "model": str(model_dir), "params": params, "threads": a.threads,
             "test_source": str(data["test"]), "test_files": data["test_files"]}
    log(f"dl4mic {a.variant}: {a.epochs} epochs x {a.steps} steps x batch {a.batch_size} x {a.patch_size}px ...")
    run_d, res_d = common.run_side("dl4mic", sys.executable, HERE / "side_dl4mic.py", cfg_d,
                                   work=work, env=env, load=load, log=log)

    ref = reference_inputs(model_dir, data["train"], data["test"], data["test_files"], work / "ref_data.npz")
    run_r = res_r = None
    if ref_python is not None:
        cfg_r = {"params": params | {"augment": True}, "threads": a.threads, "data": str(work / "ref_data.npz"),
                 "n_test": len(data["test_files"]), "workdir": str(work)}
        log("CAREamics: same settings ...")
        run_r, res_r = common.run_side("careamics", ref_python, HERE / "side_careamics.py", cfg_r,
                                       work=work, env=env, load=load, log=log, label="CAREamics")

    import numpy as np

    from dl4mic.data.io import read_image

    pred_d = np.load(work / "dl4mic_pred.npz")
    pred_r = np.load(work / "careamics_pred.npz") if res_r else None
    per_image = []
    for i, name in enumerate(data["test_files"]):
        clean = read_image(data["clean_test"] / name).astype(np.float64)
        noisy = read_image(data["test"] / name).astype(np.float64)
        row = {"file": name, "psnr_input": common.psnr(noisy, clean, 255.0),
               "psnr_dl4mic": common.psnr(pred_d[f"test_pred/{i}"], clean, 255.0)}
        if pred_r is not None:
            row["psnr_careamics"] = common.psnr(pred_r[f"test_pred/{i}"], clean, 255.0)
        per_image.append(row)

    def mean(key):
        return float(np.mean([r[key] for r in per_image])) if per_image and key in per_image[0] else None

    sd = common.summarise_epochs(res_d["epochs"], EPOCH_SUMMARY_KEYS)
    side_d = {**sd, "train_s": res_d["train_s"], "predict_s": res_d["predict_s"], "peak_rss_mb": run_d["peak_rss_mb"],
              "process_wall_s": run_d["wall_s"], "psnr": mean("psnr_dl4mic"), "n_params": res_d["n_params"],
              "versions": res_d["versions"], "threads": res_d["threads"], "epochs": res_d["epochs"]}
    side_r = None
    if res_r:
        side_r = {**common.summarise_epochs(res_r["epochs"], EPOCH_SUMMARY_KEYS), "train_s": res_r["train_s"],
                  "predict_s": res_r["predict_s"], "peak_rss_mb": run_r["peak_rss_mb"],
                  "process_wall_s": run_r["wall_s"], "psnr": mean("psnr_careamics"), "n_params": res_r["n_params"],
                  "versions": res_r["versions"], "threads": res_r["threads"],
                  "prediction_weights": res_r["prediction_weights"], "epochs": res_r["epochs"]}
    ratio = (side_d["median_epoch_s"] / side_r["median_epoch_s"]) if side_r and side_r["median_epoch_s"] else None
    result = {
        **common.result_header("n2v2d", load),
        "settings": {"variant": a.variant, "epochs": a.epochs, "steps_per_epoch": a.steps, "batch_size": a.batch_size,
                     "patch_size": a.patch_size, "threads": a.threads, "seed": a.seed, "sigma": a.sigma,
                     "n_train": len(ref["train_files"]), "n_val_files": len(ref["val_files"]),
                     "val_patches": ref["val_patches"], "n_test": len(data["test_files"]),
                     "dl4mic_params": params, "dl4mic_precision": ref["config"]["environment"].get("precision"),
                     "data": str(a.data), "psnr_data_range": 255.0},
        "dl4mic": side_d, "careamics": side_r, "psnr_input": mean("psnr_input"), "psnr_paper_n2v": PAPER_PSNR,
        "psnr_gap_dl4mic_minus_careamics": (side_d["psnr"] - side_r["psnr"]) if side_r else None,
        "ratio_epoch_time_dl4mic_over_careamics": ratio, "per_image": per_image,
    }
    out = common.new_result_path(a.results, a.variant, quick=a.quick, tag=a.tag)
    common.write_json(out, result)
    print(report_markdown(result))
    print(f"\nresults: {out}")
    common.finish_work_folder(work, keep=a.workdir is not None or a.keep, contents="models, data, logs")
    return 0


def report_markdown(r: dict) -> str:
    s, d, c = r["settings"], r["dl4mic"], r["careamics"]
    head = (f"Noise2Void 2D ({s['variant']}), BSD400 -> BSD68 sigma {s['sigma']:g} ({s['n_test']} test images), "
            f"{s['epochs']} epochs x {s['steps_per_epoch']} steps x batch {s['batch_size']} x "
            f"{s['patch_size']}x{s['patch_size']}, {s['threads']} threads, dl4mic precision {s['dl4mic_precision']}; "
            f"{r['machine']['cpu']}; load average {r['load_average']['start']} -> "
            f"{r['load_average'].get('after_careamics', r['load_average'].get('after_dl4mic'))}")

    f = common.format_or_none

    rows = [[f"dl4mic {d['versions'].get('dl4mic', '')} (torch {d['versions'].get('torch', '')})",
             f(d["median_epoch_s"], ".2f"), f(d["first_epoch_s"], ".2f"),
             f(r["ratio_epoch_time_dl4mic_over_careamics"], ".2f"), f(d["train_s"], ".1f"),
             f(d["peak_rss_mb"], ".0f"), f(d["psnr"], ".2f"), d["n_params"]]]
    if c:
        rows.append([f"CAREamics {c['versions'].get('careamics', '')} (torch {c['versions'].get('torch', '')})",
                     f(c["median_epoch_s"], ".2f"), f(c["first_epoch_s"], ".2f"), "1.00", f(c["train_s"], ".1f"),
                     f(c["peak_rss_mb"], ".0f"), f(c["psnr"], ".2f"), c["n_params"]])
    rows.append(["noisy input", None, None, None, None, None, f(r["psnr_input"], ".2f"), None])
    rows.append(["N2V paper (full training)", None, None, None, None, None, f(r["psnr_paper_n2v"], ".2f"), None])
    table = common.md_table(["", "s/epoch (median, excl. 1st)", "1st epoch s", "ratio vs reference (lower is better)",
                             "training s", "peak RSS MB", "PSNR dB (BSD68)", "parameters"], rows)
    gap = r["psnr_gap_dl4mic_minus_careamics"]
    return "\n".join([head, "", table] + ([f"\nPSNR dl4mic - CAREamics: {gap:+.2f} dB"] if gap is not None else []))


if __name__ == "__main__":
    sys.exit(main())
