#!/usr/bin/env python3
"""CARE 3D: dl4mic (PyTorch) against the reference, csbdeep CARE 3D (TensorFlow/Keras 3), in one run.

    .venv/bin/python benchmarks/care3d/run.py --quick          # smoke test, a few minutes
    .venv/bin/python benchmarks/care3d/run.py                  # 10 epochs x 10 steps x 8 x 16x64x64
    .venv/bin/python benchmarks/care3d/run.py --epochs 40 --steps 50

Run it with the project's Python (the one that imports dl4mic).  The reference runs in the CARE 2D
benchmark's virtual environment benchmarks/.venv-tf (tensorflow-cpu, csbdeep, tensorboard; Keras 3),
created on first use if it is missing.

Data: ../shared/data/care3d_cells3d_semisynthetic -- SEMI-SYNTHETIC: `high` is a real confocal nuclei
stack (scikit-image cells3d) cut into four 60x128x128 uint16 blocks, `low` a copy degraded as a
low-light acquisition (Poisson + read noise) and written in other units.  Three blocks train, one tests.

What is the same on both sides
  * data: the same training and validation stacks (dl4mic's split, read back from its model.yaml),
    normalised by dl4mic's own code -- per-stack 1/99.8 percentiles of the source and, as dl4mic's
    care3d does by default (`target_normalization: fixed`), one 1/99.8 percentile range over all
    training targets for the target (source and target are in different units) -- and the *identical*
    validation patches (dl4mic's sampler re-run with its seed);
  * training samples: every step draws `batch` fresh random 3D patches (stacks weighted by volume,
    a random flip/90-degree rotation in YX when dl4mic augments) -- on the csbdeep side through
    CARE.train's `augmenter` hook (`--ref-sampling online`, default) or from a pre-drawn array of
    epochs*steps*batch patches (`--ref-sampling pool`);
  * network: U-Net depth 2, 32 first-level filters, kernel 3, pooled 2x2x2, residual output, no batch
    norm (the parameter counts are reported and checked); MAE loss; Adam at the same learning rate;
    ReduceLROnPlateau(factor 0.5, patience 10); best-validation weights for prediction;
  * threads: both processes get the same thread count (OMP/MKL env, torch set_num_threads, TF
    intra/inter-op);
  * evaluation: each model predicts the whole test stack; csbdeep's output is mapped back to the
    targets' units with dl4mic's inverse normalisation; one scoring function
    (dl4mic.qc.metrics.restoration_metrics: 3D SSIM with a 7x7x7 window, PSNR, NRMSE; data range
    65535, the uint16 targets' full range, as `dl4mic qc` uses) scores both, not clipped or quantised.
    Beside them: the input and a 3D Gaussian filter of it (dl4mic.qc.baselines; sigma isotropic in µm,
    chosen by SSIM on the test stack), each affine-fitted to the target by least squares since the
    input is in other units -- the rule dl4mic's QC applies to baselines of `fixed`-target models.
dl4mic otherwise runs with its defaults (e.g. `precision: auto`: bfloat16 autocast on CPUs with
AVX-512-BF16/AMX, else float32); --precision float32 forces float32.  Each side runs in its own
subprocess; peak RSS is that subprocess's ru_maxrss (training + prediction).  Epoch times: dl4mic's
training/log.csv `seconds`; for csbdeep a Keras callback (epoch begin -> end, after validation and
checkpoint writes).  The first epoch (graph tracing, allocator warm-up) is reported separately; the
per-epoch figure is the median of the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402

# the CARE 2D benchmark's reference environment, shared (same requirement list, so it is installed once)
REFERENCE_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "csbdeep==0.8.2", "tensorboard"]
DEFAULT_DATA = common.REPO_DIR.parent / "shared" / "data" / "care3d_cells3d_semisynthetic"
DEFAULT_PATCH = (16, 64, 64)


def patch_arg(text: str) -> list[int]:
    values = [int(v) for v in str(text).replace("x", ",").split(",") if v.strip()]
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError("give Z,Y,X (e.g. 16,64,64) or one number")
    return values


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, help="epochs (default 10; --quick: 2)")
    ap.add_argument("--steps", type=int, help="steps per epoch (default 10; --quick: 2)")
    ap.add_argument("--batch-size", type=int, help="patches per step (default 8; --quick: 4)")
    ap.add_argument("--patch-size", type=patch_arg, default=list(DEFAULT_PATCH), help="Z,Y,X (default 16,64,64)")
    ap.add_argument("--val-patches", type=int, help="fixed validation patches (default 32; --quick: 8)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 epochs x 2 steps x batch 4, 8 val patches")
    ap.add_argument("--threads", type=int, default=2, help="compute threads for each side (default 2)")
    ap.add_argument("--precision", default=None, choices=["auto", "float32", "bfloat16"],
                    help="dl4mic's training arithmetic (default: dl4mic's own default, auto)")
    ap.add_argument("--ref-sampling", default="online", choices=["online", "pool"],
                    help="how csbdeep gets its patches (see the module docstring)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder with train/{low,high} and test/{low,high} (default: %(default)s)")
    ap.add_argument("--source-name", default="low")
    ap.add_argument("--target-name", default="high")
    ap.add_argument("--venv", type=Path, default=common.BENCH_DIR / ".venv-tf",
                    help="virtual environment of the reference (created if missing)")
    ap.add_argument("--skip-reference", action="store_true", help="dl4mic side only")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--workdir", type=Path, help="keep models and logs here (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="do not delete the temporary work folder")
    a = ap.parse_args(argv)
    a.epochs = a.epochs or (2 if a.quick else 10)
    a.steps = a.steps or (2 if a.quick else 10)
    a.batch_size = a.batch_size or (4 if a.quick else 8)
    a.val_patches = a.val_patches or (8 if a.quick else 32)
    return a


log = common.make_log("care3d")


def dl4mic_params(a) -> dict:
    p = {"steps_per_epoch": a.steps, "batch_size": a.batch_size, "patch_size": list(a.patch_size),
         "depth": 2, "filters": 32, "kernel_size": 3, "batch_norm": False, "loss": "mae", "pool_z": "yes",
         "target_normalization": "fixed", "learning_rate": 4e-4, "val_split": 0.1, "seed": a.seed,
         "lr_patience": 10, "lr_factor": 0.5, "epochs": a.epochs}
    p["val_patches"] = a.val_patches
    if a.precision:
        p["precision"] = a.precision
    return p


def reference_inputs(model_dir: Path, source: Path, target: Path, test_source: Path, test_files: list[str],
                     out: Path) -> dict:
    """Normalise the stacks for csbdeep with dl4mic's own code, from what dl4mic recorded in model.yaml.

    Re-runs dl4mic's file split and validation sampler with its seed, so csbdeep validates on exactly
    dl4mic's validation patches."""
    import numpy as np

    from dl4mic.data.check import check_data
    from dl4mic.data.io import channels_first, read_image
    from dl4mic.data.normalize import scale
    from dl4mic.data.patches import ImageCache, PatchSampler, fixed_batches, split_regions
    from dl4mic.networks import get_network
    from dl4mic.predict.model import read_model_config

    cfg = read_model_config(model_dir)
    p = cfg["parameters"]
    net = get_network(cfg["network"])
    normalizer = net.normalizer(cfg)  # 3 spatial axes: one percentile pair per stack
    summary = check_data(cfg["network"], source, target, None, p)
    pairs = summary.pairs
    patch = net.geometry(p, summary.spacing).patch
    if list(patch) != list(cfg["geometry"]["patch"]):
        raise SystemExit(f"dl4mic trained on patches {cfg['geometry']['patch']}, not {list(patch)}")
    train_regions, val_regions = split_regions(pairs, summary.shapes, p["val_split"], p["seed"], patch)
    train_names = sorted({pairs[r.index][0].name for r in train_regions})
    val_names = sorted({pairs[r.index][0].name for r in val_regions})
    if train_names != cfg["data"]["train_files"] or val_names != cfg["data"]["val_files"]:
        raise SystemExit("could not reproduce dl4mic's train/validation split from model.yaml; "
                         "update benchmarks/care3d/run.py to dl4mic's data pipeline")
    if any(r.start != 0 or r.stop != summary.shapes[r.index][-3] for r in train_regions):
        raise SystemExit("dl4mic split one stack into slabs; the benchmark expects whole-file splits")

    def load(i: int):
        src, tgt = pairs[i]
        return channels_first(read_image(src), summary.axes), channels_first(read_image(tgt), summary.axes)

    cache = ImageCache(load, net.prepare(normalizer, p), 1 << 40)
    arrays = {}
    for j, r in enumerate(train_regions):
        x, y = cache.get(r.index)
        arrays[f"train_src/{j}"], arrays[f"train_tgt/{j}"] = x, y
    val_sampler = PatchSampler(val_regions, summary.shapes, cache, patch, np.random.default_rng(p["seed"] + 1))
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
    return {"config": cfg, "normalizer": normalizer, "net": net, "test_ranges": ranges, "patch": list(patch),
            "train_files": train_names, "val_files": val_names, "augment": bool(p["augment"]),
            "val_patches": int(arrays["val_x"].shape[0]), "spacing": summary.spacing}


def main(argv=None) -> int:
    a = parse_args(argv)
    source, target = a.data / "train" / a.source_name, a.data / "train" / a.target_name
    test_source, test_target = a.data / "test" / a.source_name, a.data / "test" / a.target_name
    for d in (source, target, test_source, test_target):
        if not d.is_dir():
            raise SystemExit(f"{d} does not exist; give --data a folder with train/ and test/ "
                             f"{a.source_name}/ and {a.target_name}/ subfolders")
    test_files = common.tiff_names(test_source)

    ref_python = None if a.skip_reference else common.ensure_venv(a.venv, REFERENCE_REQUIREMENTS, log=log)

    work = common.work_folder(a.workdir, "dl4mic-care3d-bench-", log)
    env = common.thread_env(a.threads)
    load = {"start": common.load_average()}
    params = dl4mic_params(a)

    # ---- dl4mic --------------------------------------------------------------------------------
    model_dir = work / "dl4mic_model"
    cfg_d = {"network": "care3d", "source": str(source), "target": str(target), "model": str(model_dir),
             "params": params, "threads": a.threads, "test_source": str(test_source), "test_files": test_files}
    patch_txt = "x".join(map(str, a.patch_size))
    log(f"dl4mic care3d: {a.epochs} epochs x {a.steps} steps x batch {a.batch_size} x {patch_txt} ...")
    run_d, res_d = common.run_side("dl4mic", sys.executable, HERE / "side_dl4mic.py", cfg_d,
                                   work=work, env=env, load=load, log=log)

    # ---- reference ------------------------------------------------------------------------------
    ref = reference_inputs(model_dir, source, target, test_source, test_files, work / "ref_data.npz")
    run_r = res_r = None
    if ref_python is not None:
        p_ref = {**ref["config"]["parameters"], "patch_size": ref["patch"], "augment": ref["augment"]}
        cfg_r = {"params": p_ref, "threads": a.threads, "data": str(work / "ref_data.npz"),
                 "sampling": a.ref_sampling, "workdir": str(work)}
        log(f"csbdeep CARE 3D: same settings, sampling={a.ref_sampling} ...")
        run_r, res_r = common.run_side("csbdeep", ref_python, HERE / "side_csbdeep.py", cfg_r,
                                       work=work, env=env, load=load, log=log)

    # ---- quality --------------------------------------------------------------------------------
    import numpy as np

    from dl4mic.data.io import dtype_range, read_image

    cfg = ref["config"]
    tdtype = np.dtype(cfg.get("target_dtype") or "uint16")
    pred_d = np.load(work / "dl4mic_pred.npz")
    pred_r = np.load(work / "csbdeep_pred.npz") if res_r else None
    clean = [read_image(test_target / n).astype(np.float64) for n in test_files]
    noisy = [read_image(test_source / n).astype(np.float64) for n in test_files]
    data_range = dtype_range(tdtype) or float(max(c.max() for c in clean) - min(c.min() for c in clean))
    gauss, sigma, sigma_scores = common.gaussian_baseline(noisy, clean, data_range, spacing=ref["spacing"], fit=True)
    per_image = []
    for i, name in enumerate(test_files):
        row = {"file": name,
               "input": common.restoration_scores(noisy[i], clean[i], data_range, fit=True),
               "gaussian": common.restoration_scores(gauss[i], clean[i], data_range, fit=True),
               "dl4mic": common.restoration_scores(pred_d[f"test_pred/{i}"], clean[i], data_range)}
        if pred_r is not None:
            raw_r = pred_r[f"test_pred/{i}"]
            restored_r = ref["net"].outputs(raw_r[None], noisy[i], ref["normalizer"], ref["test_ranges"][i],
                                            cfg)["restored"]
            row["csbdeep"] = common.restoration_scores(restored_r, clean[i], data_range)
        per_image.append(row)

    def mean(side, key):
        if not per_image or side not in per_image[0]:
            return None
        return float(np.mean([r[side][key] for r in per_image]))

    def side_entry(res, run, name):
        s = common.summarise_epochs(res["epochs"])
        return {**s, "train_s": res["train_s"], "predict_s": res["predict_s"], "peak_rss_mb": run["peak_rss_mb"],
                "process_wall_s": run["wall_s"], "cpu_s": run["user_s"] + run["sys_s"],
                "psnr": mean(name, "psnr"), "ssim": mean(name, "ssim"), "nrmse": mean(name, "nrmse"),
                "n_params": res["n_params"], "versions": res["versions"], "threads": res["threads"],
                **({"patch_pool_mb": res["patch_pool_mb"], "prediction_weights": res["prediction_weights"]}
                   if name == "csbdeep" else {}),
                "epochs": res["epochs"]}

    side_d = side_entry(res_d, run_d, "dl4mic")
    side_r = side_entry(res_r, run_r, "csbdeep") if res_r else None
    ratio = (side_d["median_epoch_s"] / side_r["median_epoch_s"]) \
        if side_r and side_d["median_epoch_s"] and side_r["median_epoch_s"] else None
    result = {
        **common.result_header("care3d", load),
        "data_note": "semi-synthetic: real confocal stack (high) and a degraded copy in other units (low)",
        "settings": {"epochs": a.epochs, "steps_per_epoch": a.steps, "batch_size": a.batch_size,
                     "patch_size": ref["patch"], "threads": a.threads, "seed": a.seed,
                     "network": {"depth": 2, "filters": 32, "kernel_size": 3, "pool": [2, 2, 2], "residual": True,
                                 "batch_norm": False, "loss": "mae", "learning_rate": 4e-4},
                     "augment": ref["augment"], "val_patches": ref["val_patches"],
                     "train_files": ref["train_files"], "val_files": ref["val_files"], "test_files": test_files,
                     "normalization": cfg["normalization"], "data": str(a.data),
                     "dl4mic_params": params, "dl4mic_precision": cfg.get("environment", {}).get("precision"),
                     "reference_sampling": a.ref_sampling, "data_range": data_range,
                     "gaussian_sigma": list(sigma) if np.ndim(sigma) else sigma,
                     "gaussian_ssim_by_sigma": sigma_scores,
                     "baselines": "input and Gaussian affine-fitted (least squares) to the target; models not fitted"},
        "dl4mic": side_d, "csbdeep": side_r,
        "input": {k: mean("input", k) for k in ("psnr", "ssim", "nrmse")},
        "gaussian": {k: mean("gaussian", k) for k in ("psnr", "ssim", "nrmse")},
        "per_image": per_image,
        "params_equal": (side_d["n_params"] == side_r["n_params"]) if side_r else None,
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
    la = r["load_average"]
    head = (f"CARE 3D on semi-synthetic cells3d stacks ({len(s['test_files'])} test stack), {s['epochs']} epochs x "
            f"{s['steps_per_epoch']} steps x batch {s['batch_size']} x {'x'.join(map(str, s['patch_size']))}, "
            f"{s['val_patches']} validation patches, {s['threads']} threads, dl4mic precision "
            f"{s['dl4mic_precision']}, reference sampling {s['reference_sampling']}; {r['machine']['cpu']}; "
            f"load average {la['start']} -> {la.get('after_csbdeep', la.get('after_dl4mic'))}")
    f = common.format_or_none
    rows = [[f"dl4mic {d['versions'].get('dl4mic', '')} (torch {d['versions'].get('torch', '')})",
             f(d["median_epoch_s"], ".2f"), f(d["first_epoch_s"], ".2f"),
             f(r["ratio_epoch_time_dl4mic_over_csbdeep"], ".2f"), f(d["train_s"], ".1f"), f(d["peak_rss_mb"], ".0f"),
             f(d["psnr"], ".2f"), f(d["ssim"], ".3f"), d["n_params"]]]
    if c:
        rows.append([f"csbdeep {c['versions'].get('csbdeep', '')} (TF {c['versions'].get('tensorflow', '')})",
                     f(c["median_epoch_s"], ".2f"), f(c["first_epoch_s"], ".2f"), "1.00", f(c["train_s"], ".1f"),
                     f(c["peak_rss_mb"], ".0f"), f(c["psnr"], ".2f"), f(c["ssim"], ".3f"), c["n_params"]])
    sig = s["gaussian_sigma"]
    sig_txt = ", ".join(f"{v:.2f}" for v in sig) if isinstance(sig, list) else f"{sig:g}"
    rows.append(["input (affine-fitted)", None, None, None, None, None, f(r["input"]["psnr"], ".2f"),
                 f(r["input"]["ssim"], ".3f"), None])
    rows.append([f"3D Gaussian, sigma ZYX {sig_txt} px (affine-fitted)", None, None, None, None, None,
                 f(r["gaussian"]["psnr"], ".2f"), f(r["gaussian"]["ssim"], ".3f"), None])
    table = common.md_table(["", "s/epoch (median, excl. 1st)", "1st epoch s", "ratio vs reference (lower is better)",
                             "training s", "peak RSS MB", "PSNR dB (test, semi-synthetic)", "SSIM (3D)",
                             "parameters"], rows)
    notes = [f"PSNR/SSIM in the targets' units, data range {s['data_range']:g}."]
    if c and d["n_params"] != c["n_params"]:
        notes.append(f"note: the networks differ in size ({d['n_params']} vs {c['n_params']} parameters).")
    return "\n".join([head, "", table, ""] + notes)


if __name__ == "__main__":
    sys.exit(main())
