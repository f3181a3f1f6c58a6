#!/usr/bin/env python3
"""CARE 2D: dl4mic (PyTorch) against the reference, csbdeep CARE (TensorFlow/Keras), in one run.

    .venv/bin/python benchmarks/care2d/run.py --quick          # smoke test, ~2 minutes
    .venv/bin/python benchmarks/care2d/run.py                  # 20 epochs x 50 steps x 16 x 64x64
    .venv/bin/python benchmarks/care2d/run.py --epochs 100 --steps 100

Run it with the project's Python (the one that imports dl4mic).  The reference
is installed, on first use, into its own virtual environment
benchmarks/.venv-tf (tensorflow-cpu, csbdeep, tensorboard; Keras 3).

What is the same on both sides
  * data: the same training and validation files (dl4mic's split, read back
    from its model.yaml), normalised by dl4mic's own code (per-image
    percentiles for the source, the target range recorded in model.yaml), and
    the *identical* validation patches (dl4mic's sampler re-run with its seed);
  * training samples: every step draws `batch` fresh random patches
    (images weighted by area, random dihedral flip/rotation when dl4mic
    augments) -- on the csbdeep side through CARE.train's `augmenter` hook
    (`--ref-sampling online`, default) or from a pre-drawn array of
    epochs*steps*batch patches (`--ref-sampling pool`, csbdeep's usual input);
  * network: U-Net depth 2, 32 first-level filters, kernel 3, residual
    output, no batch norm; MAE loss; Adam at the same learning rate;
    ReduceLROnPlateau(factor 0.5, patience 10); best-validation weights kept;
  * threads: both processes get the same thread count (OMP/MKL env, torch
    set_num_threads, TF intra/inter-op);
  * evaluation: the test images are predicted by each model, mapped back to
    raw intensities with dl4mic's inverse normalisation, not clipped or
    quantised, and scored by one PSNR function (skimage, data range 255 for
    uint8 targets).
dl4mic runs with its own defaults otherwise (e.g. `precision: auto`, which is
bfloat16 autocast on CPUs with AVX-512-BF16/AMX); pass --precision float32
for a float32-vs-float32 comparison.  Each side runs in its own subprocess;
peak RSS is that subprocess's ru_maxrss (training + prediction).
Epoch times: dl4mic's training/log.csv `seconds`; for csbdeep a Keras
callback (epoch begin -> end, after validation and checkpoint writes).  The
first epoch (graph tracing, allocator warm-up) is reported separately; the
per-epoch figure is the median of the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402

REFERENCE_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "csbdeep==0.8.2", "tensorboard"]
DEFAULT_DATA = common.REPO_DIR.parent / "shared" / "data" / "fmd_confocal_bpae_b"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, help="epochs (default 20; --quick: 2)")
    ap.add_argument("--steps", type=int, help="steps per epoch (default 50; --quick: 10)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch-size", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 epochs x 10 steps")
    ap.add_argument("--threads", type=int, default=2, help="compute threads for each side (default 2)")
    ap.add_argument("--precision", default=None, choices=["auto", "float32", "bfloat16"],
                    help="dl4mic's training arithmetic (default: dl4mic's own default, auto)")
    ap.add_argument("--ref-sampling", default="online", choices=["online", "pool"],
                    help="how csbdeep gets its patches (see the module docstring)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder with train/{noisy,clean} and test/{noisy,clean} (default: %(default)s)")
    ap.add_argument("--source-name", default="noisy")
    ap.add_argument("--target-name", default="clean")
    ap.add_argument("--venv", type=Path, default=common.BENCH_DIR / ".venv-tf",
                    help="virtual environment of the reference (created if missing)")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--workdir", type=Path, help="keep models and logs here (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="do not delete the temporary work folder")
    a = ap.parse_args(argv)
    if a.epochs is None:
        a.epochs = 2 if a.quick else 20
    if a.steps is None:
        a.steps = 10 if a.quick else 50
    return a


log = common.make_log("care2d")


def dl4mic_params(a) -> dict:
    p = {"steps_per_epoch": a.steps, "batch_size": a.batch_size, "patch_size": a.patch_size,
         "depth": 2, "filters": 32, "kernel_size": 3, "batch_norm": False, "loss": "mae",
         "learning_rate": 4e-4, "val_split": 0.1, "seed": a.seed, "lr_patience": 10, "lr_factor": 0.5}
    if a.precision:
        p["precision"] = a.precision
    return p


def reference_inputs(model_dir: Path, source: Path, target: Path, test_source: Path, test_files: list[str],
                     out: Path) -> dict:
    """Normalise the data for csbdeep with dl4mic's own code, from what dl4mic recorded in model.yaml.

    Re-runs dl4mic's file split and validation sampler with its seed, so csbdeep
    validates on exactly dl4mic's validation patches."""
    import numpy as np

    from dl4mic.data.io import read_image
    from dl4mic.data.normalize import scale
    from dl4mic.data.patches import ImageCache, PatchSampler, fixed_batches
    from dl4mic.data.sources import FolderPairs
    from dl4mic.networks import get_network
    from dl4mic.predict.model import read_model_config
    from dl4mic.specs import load_spec

    cfg = read_model_config(model_dir)
    p = cfg["parameters"]
    net = get_network(cfg["network"])
    normalizer = net.normalizer(cfg)
    data = FolderPairs(load_spec(cfg["network"]), source, target, params=p)
    patch = net.geometry(p).patch
    data.split(p["val_split"], p["seed"], patch)
    summary, pairs = data.summary, data.summary.pairs
    train_regions, val_regions = data.train_regions, data.val_regions
    train_names = sorted({pairs[r.index][0].name for r in train_regions})
    val_names = sorted({pairs[r.index][0].name for r in val_regions})
    if train_names != cfg["data"]["train_files"] or val_names != cfg["data"]["val_files"]:
        raise SystemExit("could not reproduce dl4mic's train/validation split from model.yaml; "
                         "update benchmarks/care2d/run.py to dl4mic's data pipeline")
    if any(r.start != 0 or r.stop != summary.shapes[r.index][-2] for r in train_regions):
        raise SystemExit("dl4mic split one image into strips; the benchmark expects whole-file splits")
    cache = ImageCache(data.load, net.prepare(normalizer, p), 1 << 40)
    arrays = {}
    for j, r in enumerate(train_regions):
        x, y = cache.get(r.index)
        arrays[f"train_src/{j}"], arrays[f"train_tgt/{j}"] = x, y
    val_sampler = PatchSampler(val_regions, summary.shapes, cache, patch,
                               np.random.default_rng(p["seed"] + 1))
    batches = fixed_batches(val_sampler, p["val_patches"], p["batch_size"])
    arrays["val_x"] = np.concatenate([b[0] for b in batches])[:, 0]
    arrays["val_y"] = np.concatenate([b[1] for b in batches])[:, 0]
    ranges = []
    for i, name in enumerate(test_files):
        img = read_image(test_source / name)
        rng_ = normalizer.source_range(img)
        ranges.append(rng_)
        arrays[f"test_src/{i}"] = scale(img, *rng_)
    np.savez(out, **arrays)
    return {"config": cfg, "normalizer": normalizer, "net": net, "test_ranges": ranges,
            "train_files": train_names, "val_files": val_names, "augment": bool(p["augment"]),
            "val_patches": int(arrays["val_x"].shape[0])}


def main(argv=None) -> int:
    a = parse_args(argv)
    source, target = a.data / "train" / a.source_name, a.data / "train" / a.target_name
    test_source, test_target = a.data / "test" / a.source_name, a.data / "test" / a.target_name
    for d in (source, target, test_source, test_target):
        if not d.is_dir():
            raise SystemExit(f"{d} does not exist; give --data a folder with train/ and test/ "
                             f"{a.source_name}/ and {a.target_name}/ subfolders")
    test_files = common.tiff_names(test_source)

    ref_python = common.ensure_venv(a.venv, REFERENCE_REQUIREMENTS, log=log)

    work = common.work_folder(a.workdir, "dl4mic-care2d-bench-", log)
    env = common.thread_env(a.threads)
    load = {"start": common.load_average()}
    params = dl4mic_params(a)
    params["epochs"] = a.epochs

    # ---- dl4mic --------------------------------------------------------------------------------
    model_dir = work / "dl4mic_model"
    cfg_d = {"source": str(source), "target": str(target), "model": str(model_dir), "params": params,
             "threads": a.threads, "test_source": str(test_source), "test_files": test_files}
    log(f"dl4mic: {a.epochs} epochs x {a.steps} steps x batch {a.batch_size} x {a.patch_size}px ...")
    run_d, res_d = common.run_side("dl4mic", sys.executable, HERE / "side_dl4mic.py", cfg_d,
                                   work=work, env=env, load=load, log=log)

    # ---- reference ------------------------------------------------------------------------------
    ref = reference_inputs(model_dir, source, target, test_source, test_files, work / "ref_data.npz")
    cfg_r = {"params": {**params, "augment": ref["augment"]}, "threads": a.threads,
             "data": str(work / "ref_data.npz"), "sampling": a.ref_sampling, "workdir": str(work)}
    log(f"csbdeep: same settings, sampling={a.ref_sampling} ...")
    run_r, res_r = common.run_side("csbdeep", ref_python, HERE / "side_csbdeep.py", cfg_r,
                                   work=work, env=env, load=load, log=log)

    # ---- quality --------------------------------------------------------------------------------
    import numpy as np

    from dl4mic.data.io import read_image

    cfg = ref["config"]
    tdtype = np.dtype(cfg.get("target_dtype") or "uint8")
    data_range = float(np.iinfo(tdtype).max) if tdtype.kind in "ui" else None
    pred_d = np.load(work / "dl4mic_pred.npz")
    pred_r = np.load(work / "csbdeep_pred.npz")
    per_image = []
    for i, name in enumerate(test_files):
        clean = read_image(test_target / name).astype(np.float64)
        noisy = read_image(test_source / name).astype(np.float64)
        dr = data_range if data_range is not None else float(clean.max() - clean.min())
        raw_r = pred_r[f"test_pred/{i}"]
        restored_r = ref["net"].outputs(raw_r[None], noisy, ref["normalizer"], ref["test_ranges"][i], cfg)["restored"]
        restored_d = pred_d[f"test_pred/{i}"]
        per_image.append({"file": name,
                          "psnr_input": common.psnr(noisy, clean, dr),
                          "psnr_dl4mic": common.psnr(restored_d, clean, dr),
                          "psnr_csbdeep": common.psnr(restored_r, clean, dr)})

    def mean(key):
        return float(np.mean([r[key] for r in per_image]))

    sd, sr = common.summarise_epochs(res_d["epochs"]), common.summarise_epochs(res_r["epochs"])
    ratio = (sd["median_epoch_s"] / sr["median_epoch_s"]) if sd["median_epoch_s"] and sr["median_epoch_s"] else None
    result = {
        **common.result_header("care2d", load),
        "settings": {"epochs": a.epochs, "steps_per_epoch": a.steps, "batch_size": a.batch_size,
                     "patch_size": a.patch_size, "threads": a.threads, "seed": a.seed,
                     "network": {"depth": 2, "filters": 32, "kernel_size": 3, "residual": True,
                                 "batch_norm": False, "loss": "mae", "learning_rate": 4e-4},
                     "augment": ref["augment"], "val_patches": ref["val_patches"],
                     "train_files": ref["train_files"], "val_files": ref["val_files"], "test_files": test_files,
                     "normalization": cfg["normalization"], "data": str(a.data),
                     "dl4mic_precision": cfg.get("environment", {}).get("precision"),
                     "reference_sampling": a.ref_sampling, "psnr_data_range": data_range},
        "dl4mic": {**sd, "train_s": res_d["train_s"], "predict_s": res_d["predict_s"],
                   "peak_rss_mb": run_d["peak_rss_mb"], "process_wall_s": run_d["wall_s"],
                   "cpu_s": run_d["user_s"] + run_d["sys_s"], "psnr": mean("psnr_dl4mic"),
                   "n_params": res_d["n_params"], "versions": res_d["versions"], "threads": res_d["threads"],
                   "epochs": res_d["epochs"]},
        "csbdeep": {**sr, "train_s": res_r["train_s"], "predict_s": res_r["predict_s"],
                    "peak_rss_mb": run_r["peak_rss_mb"], "process_wall_s": run_r["wall_s"],
                    "cpu_s": run_r["user_s"] + run_r["sys_s"], "psnr": mean("psnr_csbdeep"),
                    "n_params": res_r["n_params"], "versions": res_r["versions"], "threads": res_r["threads"],
                    "patch_pool_mb": res_r["patch_pool_mb"], "epochs": res_r["epochs"]},
        "psnr_input": mean("psnr_input"),
        "per_image": per_image,
        "ratio_epoch_time_dl4mic_over_csbdeep": ratio,
    }
    out = common.new_result_path(a.results, quick=a.quick, tag=a.tag)
    common.write_json(out, result)

    print(report_markdown(result))
    print(f"\nresults: {out}")
    common.finish_work_folder(work, keep=a.workdir is not None or a.keep, contents="models, logs")
    return 0


def report_markdown(r: dict) -> str:
    s = r["settings"]
    d, c = r["dl4mic"], r["csbdeep"]
    head = (f"CARE 2D, {s['epochs']} epochs x {s['steps_per_epoch']} steps x batch {s['batch_size']} x "
            f"{s['patch_size']}x{s['patch_size']}, {s['threads']} threads, dl4mic precision {s['dl4mic_precision']}, "
            f"reference sampling {s['reference_sampling']}; {r['machine']['cpu']}; load average "
            f"{r['load_average']['start']} -> {r['load_average'].get('after_csbdeep')}")
    ratio = r["ratio_epoch_time_dl4mic_over_csbdeep"]
    f = common.format_or_none

    rows = []
    for label, x, rat in ((f"dl4mic {d['versions'].get('dl4mic', '')} (torch {d['versions'].get('torch', '')})", d, ratio),
                          (f"csbdeep {c['versions'].get('csbdeep', '')} (TF {c['versions'].get('tensorflow', '')})", c, 1.0)):
        rows.append([label, f(x["median_epoch_s"], ".2f"), f(x["first_epoch_s"], ".2f"), f(rat, ".2f"),
                     f(x["train_s"], ".1f"), f(x["peak_rss_mb"], ".0f"), f(x["psnr"], ".2f"), x["n_params"]])
    rows.append(["noisy input", None, None, None, None, None, f(r["psnr_input"], ".2f"), None])
    table = common.md_table(["", "s/epoch (median, excl. 1st)", "1st epoch s", "ratio vs reference (lower is better)",
                             "training s", "peak RSS MB", "PSNR dB (test)", "parameters"], rows)
    notes = []
    if d["n_params"] != c["n_params"]:
        notes.append(f"note: the networks differ in size ({d['n_params']} vs {c['n_params']} parameters).")
    return "\n".join([head, "", table] + ([""] + notes if notes else []))


if __name__ == "__main__":
    sys.exit(main())
