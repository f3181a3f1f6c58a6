#!/usr/bin/env python3
"""Noise2Void 3D: dl4mic (PyTorch) against the reference, CAREamics 3D (PyTorch Lightning), in one run.

    .venv/bin/python benchmarks/n2v3d/run.py --quick            # smoke test, a few minutes
    .venv/bin/python benchmarks/n2v3d/run.py                    # 8 epochs x 10 steps x 4 x 32x64x64
    .venv/bin/python benchmarks/n2v3d/run.py --variant n2v2 --epochs 30

Data: ../shared/data/care3d_cells3d_semisynthetic -- SEMI-SYNTHETIC: `high` is a real confocal nuclei
stack (scikit-image cells3d) cut into four 60x128x128 uint16 blocks, `low` a copy degraded as a
low-light acquisition (Poisson + Gaussian read noise), written as uint16(noisy_photons * 100 + 1000).
Both sides train on the three degraded training stacks (`train/low`) alone; the clean stacks are
used only to score the prediction of the degraded test stack (`test/low` against `test/high`).

Scoring.  The prediction is in the degraded stack's units (photons * 100 + 1000), the clean stack in
the microscope's; the two differ by an (unknown) affine map, which is what the degradation applied
(`photons = (high - p1) / (p99.9 - p1) * 20 + 0.5`, clipped at 0).  The N2V 2D benchmark needs no
map (its noisy and clean images share units).  Here every output -- dl4mic's, CAREamics', the noisy
input and a 3D Gaussian filter of it -- is mapped to the clean stack's units by the same least-squares
affine fit a * x + b on the test stack (dl4mic.qc.baselines.affine_fit, the rule dl4mic's QC uses for
outputs in other units; the same as csbdeep's `normalize_minmse`), then scored by one function
(dl4mic.qc.metrics.restoration_metrics: PSNR, 3D SSIM with a 7x7x7 window, NRMSE; data range 65535,
the uint16 targets' full range).  The fit is an oracle (it sees the clean stack) but it is the same
two numbers' worth of help for every row, so the rows compare.

What is the same on both sides
  * data: dl4mic's training files (its split, read back from model.yaml) are the reference's training
    array; the reference validates on the raw voxels of exactly dl4mic's validation patches (dl4mic's
    sampler re-run with its seed);
  * epochs, steps per epoch, batch size, patch size (Z, Y, X; CAREamics needs powers of 2, square
    in YX), random flips/90-degree rotations in YX;
  * N2V settings: variant (n2v or n2v2), 0.198 % masked voxels, 11x11x11 neighbourhood;
  * network: U-Net depth 2, 32 first-level filters, batch norm, pooled 2x2x2; Adam at the same
    learning rate, ReduceLROnPlateau(0.5, patience 10);
  * normalisation: one mean / standard deviation over the training stacks (each side computes its own);
  * threads: both processes get the same thread count; data loading in the main process.
What differs (each side's own defaults): the U-Net's decoder details (CAREamics: trilinear
up-sampling, a different width; the parameter counts are reported), dl4mic's `precision: auto`
(bfloat16 autocast on CPUs with AVX-512-BF16/AMX, else float32; CAREamics trains in float32;
--precision float32 forces float32), the weights used for prediction (dl4mic: best validation loss;
CAREamics: the last epoch, its rule for N2V), the masks drawn for validation.  Peak RSS is each
subprocess's ru_maxrss (training + prediction).  Seconds per epoch include validation and
checkpoint writes on both sides; the first epoch is reported separately.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402



def _n2v2d_driver():
    """benchmarks/n2v2d/run.py as a module: the reference environment is the N2V 2D benchmark's (the same
    requirement lists, so benchmarks/.venv-careamics is installed once for both)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("n2v2d_run", HERE.parent / "n2v2d" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_N2V2D = _n2v2d_driver()
REFERENCE_DEPS, REFERENCE_NO_DEPS = _N2V2D.REFERENCE_DEPS, _N2V2D.REFERENCE_NO_DEPS

DEFAULT_DATA = common.REPO_DIR.parent / "shared" / "data" / "care3d_cells3d_semisynthetic"
DEFAULT_PATCH = (32, 64, 64)
EPOCH_SUMMARY_KEYS = ("first_epoch_s", "median_epoch_s", "final_loss", "best_val_loss")


def patch_arg(text: str) -> list[int]:
    values = [int(v) for v in str(text).replace("x", ",").split(",") if v.strip()]
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError("give Z,Y,X (e.g. 32,64,64) or one number")
    bad = [v for v in values if v < 8 or v & (v - 1)]
    if bad or values[1] != values[2]:
        raise argparse.ArgumentTypeError(f"CAREamics needs patch sizes that are powers of 2 (>= 8) and square in YX, "
                                         f"not {','.join(map(str, values))}")
    return values


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, help="epochs (default 8; --quick: 2)")
    ap.add_argument("--steps", type=int, help="steps per epoch (default 10; --quick: 2)")
    ap.add_argument("--batch-size", type=int, default=4, help="patches per step (default 4, n2v3d's default)")
    ap.add_argument("--patch-size", type=patch_arg, default=list(DEFAULT_PATCH), help="Z,Y,X (default 32,64,64)")
    ap.add_argument("--val-patches", type=int, help="fixed validation patches (default 16; --quick: 4)")
    ap.add_argument("--variant", default="n2v", choices=["n2v", "n2v2"])
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 epochs x 2 steps x batch 4, 4 val patches")
    ap.add_argument("--threads", type=int, default=2, help="compute threads for each side (default 2)")
    ap.add_argument("--precision", default=None, choices=["auto", "float32", "bfloat16"],
                    help="dl4mic's training arithmetic (default: dl4mic's own default, auto)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder with train/low and test/{low,high} (default: %(default)s)")
    ap.add_argument("--source-name", default="low")
    ap.add_argument("--clean-name", default="high")
    ap.add_argument("--venv", type=Path, default=common.BENCH_DIR / ".venv-careamics",
                    help="virtual environment of the reference (created if missing)")
    ap.add_argument("--skip-reference", action="store_true", help="dl4mic side only")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--workdir", type=Path, help="keep models, data and logs here (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="do not delete the temporary work folder")
    a = ap.parse_args(argv)
    a.epochs = a.epochs or (2 if a.quick else 8)
    a.steps = a.steps or (2 if a.quick else 10)
    a.val_patches = a.val_patches or (4 if a.quick else 16)
    return a


log = common.make_log("n2v3d")


def ensure_reference(path: Path) -> Path:
    """benchmarks/.venv-careamics: CAREamics 0.3.5 beside the local CPU torch (two pip calls, as n2v2d)."""
    return common.ensure_venv(path, REFERENCE_DEPS, log=log, no_deps=REFERENCE_NO_DEPS,
                              what="CAREamics 0.3.5 and its dependencies")


def dl4mic_params(a) -> dict:
    p = {"variant": a.variant, "steps_per_epoch": a.steps, "batch_size": a.batch_size,
         "patch_size": list(a.patch_size), "depth": 2, "filters": 32, "kernel_size": 3, "batch_norm": True,
         "pool_z": "yes", "normalization": "dataset", "learning_rate": 4e-4, "masked_pixel_percentage": 0.198,
         "neighborhood_radius": 5, "val_split": 0.1, "val_patches": a.val_patches, "augment": True, "seed": a.seed,
         "lr_patience": 10, "lr_factor": 0.5, "epochs": a.epochs}
    if a.precision:
        p["precision"] = a.precision
    return p


def reference_inputs(model_dir: Path, source: Path, test_dir: Path, test_files: list[str], out: Path) -> dict:
    """Raw arrays for CAREamics: dl4mic's training stacks and the raw voxels of its validation patches."""
    import numpy as np

    from dl4mic.data.check import check_data
    from dl4mic.data.io import channels_first, read_image
    from dl4mic.data.patches import ImageCache, PatchSampler, fixed_batches, split_regions
    from dl4mic.networks import get_network
    from dl4mic.predict.model import read_model_config

    cfg = read_model_config(model_dir)
    p = cfg["parameters"]
    net = get_network(cfg["network"])
    summary = check_data(cfg["network"], source, None, None, p)
    pairs = summary.pairs
    patch = net.geometry(p, summary.spacing).patch
    if list(patch) != list(cfg["geometry"]["patch"]):
        raise SystemExit(f"dl4mic trained on patches {cfg['geometry']['patch']}, not {list(patch)}")
    train_regions, val_regions = split_regions(pairs, summary.shapes, p["val_split"], p["seed"], patch)
    train_names = sorted({pairs[r.index][0].name for r in train_regions})
    if train_names != cfg["data"]["train_files"]:
        raise SystemExit("could not reproduce dl4mic's train/validation split from model.yaml")
    if any(r.start != 0 or r.stop != summary.shapes[r.index][-3] for r in train_regions):
        raise SystemExit("dl4mic split one stack into slabs; the benchmark expects whole-file splits")

    def load(i: int):
        return channels_first(read_image(pairs[i][0]), summary.axes), None

    raw = ImageCache(load, lambda s, t: (np.asarray(s, np.float32), None), 1 << 40)
    batches = fixed_batches(PatchSampler(val_regions, summary.shapes, raw, patch,
                                         np.random.default_rng(p["seed"] + 1)), p["val_patches"], p["batch_size"])
    arrays = {"train": np.stack([raw.get(r.index)[0] for r in train_regions]),
              "val": np.concatenate([b[0] for b in batches])[:, 0]}
    for i, name in enumerate(test_files):
        arrays[f"test/{i}"] = read_image(test_dir / name).astype(np.float32)
    np.savez(out, **arrays)
    return {"config": cfg, "train_files": train_names, "val_files": cfg["data"]["val_files"], "patch": list(patch),
            "val_patches": int(arrays["val"].shape[0]), "spacing": summary.spacing}


def main(argv=None) -> int:
    a = parse_args(argv)
    source = a.data / "train" / a.source_name
    test_source, test_clean = a.data / "test" / a.source_name, a.data / "test" / a.clean_name
    for d in (source, test_source, test_clean):
        if not d.is_dir():
            raise SystemExit(f"{d} does not exist; give --data a folder with train/{a.source_name}/ and "
                             f"test/{a.source_name}/, test/{a.clean_name}/")
    test_files = common.tiff_names(test_source)
    ref_python = None if a.skip_reference else ensure_reference(a.venv)
    work = common.work_folder(a.workdir, "dl4mic-n2v3d-bench-", log)
    env = common.thread_env(a.threads)
    load = {"start": common.load_average()}
    params = dl4mic_params(a)

    model_dir = work / "dl4mic_model"
    cfg_d = {"source": str(source), "model": str(model_dir), "params": params, "threads": a.threads,
             "test_source": str(test_source), "test_files": test_files}
    patch_txt = "x".join(map(str, a.patch_size))
    log(f"dl4mic n2v3d ({a.variant}): {a.epochs} epochs x {a.steps} steps x batch {a.batch_size} x {patch_txt} ...")
    run_d, res_d = common.run_side("dl4mic", sys.executable, HERE / "side_dl4mic.py", cfg_d,
                                   work=work, env=env, load=load, log=log)

    ref = reference_inputs(model_dir, source, test_source, test_files, work / "ref_data.npz")
    run_r = res_r = None
    if ref_python is not None:
        cfg_r = {"params": params | {"augment": True, "patch_size": ref["patch"]}, "threads": a.threads,
                 "data": str(work / "ref_data.npz"), "n_test": len(test_files), "workdir": str(work)}
        log("CAREamics 3D: same settings ...")
        run_r, res_r = common.run_side("careamics", ref_python, HERE / "side_careamics.py", cfg_r,
                                       work=work, env=env, load=load, log=log, label="CAREamics")

    import numpy as np

    from dl4mic.data.io import dtype_range, read_image

    pred_d = np.load(work / "dl4mic_pred.npz")
    pred_r = np.load(work / "careamics_pred.npz") if res_r else None
    clean = [read_image(test_clean / n) for n in test_files]
    tdtype = clean[0].dtype
    clean = [c.astype(np.float64) for c in clean]
    noisy = [read_image(test_source / n).astype(np.float64) for n in test_files]
    data_range = dtype_range(tdtype) or float(max(c.max() for c in clean) - min(c.min() for c in clean))
    gauss, sigma, sigma_scores = common.gaussian_baseline(noisy, clean, data_range, spacing=ref["spacing"], fit=True)
    per_image = []
    for i, name in enumerate(test_files):
        row = {"file": name,
               "input": common.restoration_scores(noisy[i], clean[i], data_range, fit=True),
               "gaussian": common.restoration_scores(gauss[i], clean[i], data_range, fit=True),
               "dl4mic": common.restoration_scores(pred_d[f"test_pred/{i}"], clean[i], data_range, fit=True)}
        if pred_r is not None:
            row["careamics"] = common.restoration_scores(pred_r[f"test_pred/{i}"], clean[i], data_range, fit=True)
        per_image.append(row)

    def mean(side, key):
        if not per_image or side not in per_image[0]:
            return None
        return float(np.mean([r[side][key] for r in per_image]))

    def side_entry(res, run, name):
        return {**common.summarise_epochs(res["epochs"], EPOCH_SUMMARY_KEYS), "train_s": res["train_s"],
                "predict_s": res["predict_s"], "peak_rss_mb": run["peak_rss_mb"], "process_wall_s": run["wall_s"],
                "cpu_s": run["user_s"] + run["sys_s"], "psnr": mean(name, "psnr"), "ssim": mean(name, "ssim"),
                "nrmse": mean(name, "nrmse"), "n_params": res["n_params"], "versions": res["versions"],
                "threads": res["threads"],
                **({"prediction_weights": res["prediction_weights"]} if "prediction_weights" in res else {}),
                "epochs": res["epochs"]}

    side_d = side_entry(res_d, run_d, "dl4mic")
    side_r = side_entry(res_r, run_r, "careamics") if res_r else None
    ratio = (side_d["median_epoch_s"] / side_r["median_epoch_s"]) \
        if side_r and side_d["median_epoch_s"] and side_r["median_epoch_s"] else None
    cfg = ref["config"]
    result = {
        **common.result_header("n2v3d", load),
        "data_note": "semi-synthetic: trained on the degraded copy (low) only, scored against the real confocal "
                     "stack (high) after a least-squares affine fit",
        "settings": {"variant": a.variant, "epochs": a.epochs, "steps_per_epoch": a.steps, "batch_size": a.batch_size,
                     "patch_size": ref["patch"], "threads": a.threads, "seed": a.seed,
                     "n_train": len(ref["train_files"]), "train_files": ref["train_files"],
                     "val_files": ref["val_files"], "val_patches": ref["val_patches"], "test_files": test_files,
                     "dl4mic_params": params, "dl4mic_precision": cfg["environment"].get("precision"),
                     "normalization": cfg["normalization"], "data": str(a.data), "data_range": data_range,
                     "scoring": "every row affine-fitted (least squares) to the clean test stack, then "
                                "dl4mic.qc.metrics.restoration_metrics",
                     "gaussian_sigma": list(sigma) if np.ndim(sigma) else sigma,
                     "gaussian_ssim_by_sigma": sigma_scores},
        "dl4mic": side_d, "careamics": side_r,
        "input": {k: mean("input", k) for k in ("psnr", "ssim", "nrmse")},
        "gaussian": {k: mean("gaussian", k) for k in ("psnr", "ssim", "nrmse")},
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
    la = r["load_average"]
    head = (f"Noise2Void 3D ({s['variant']}) on semi-synthetic cells3d stacks: trained on {s['n_train']} degraded "
            f"stacks, scored on {len(s['test_files'])} against the clean stack (affine-fitted), {s['epochs']} epochs x "
            f"{s['steps_per_epoch']} steps x batch {s['batch_size']} x {'x'.join(map(str, s['patch_size']))}, "
            f"{s['val_patches']} validation patches, {s['threads']} threads, dl4mic precision {s['dl4mic_precision']}; "
            f"{r['machine']['cpu']}; load average {la['start']} -> {la.get('after_careamics', la.get('after_dl4mic'))}")
    f = common.format_or_none
    rows = [[f"dl4mic {d['versions'].get('dl4mic', '')} (torch {d['versions'].get('torch', '')})",
             f(d["median_epoch_s"], ".2f"), f(d["first_epoch_s"], ".2f"),
             f(r["ratio_epoch_time_dl4mic_over_careamics"], ".2f"), f(d["train_s"], ".1f"),
             f(d["peak_rss_mb"], ".0f"), f(d["psnr"], ".2f"), f(d["ssim"], ".3f"), d["n_params"]]]
    if c:
        rows.append([f"CAREamics {c['versions'].get('careamics', '')} (torch {c['versions'].get('torch', '')})",
                     f(c["median_epoch_s"], ".2f"), f(c["first_epoch_s"], ".2f"), "1.00", f(c["train_s"], ".1f"),
                     f(c["peak_rss_mb"], ".0f"), f(c["psnr"], ".2f"), f(c["ssim"], ".3f"), c["n_params"]])
    sig = s["gaussian_sigma"]
    sig_txt = ", ".join(f"{v:.2f}" for v in sig) if isinstance(sig, list) else f"{sig:g}"
    rows.append(["noisy input", None, None, None, None, None, f(r["input"]["psnr"], ".2f"),
                 f(r["input"]["ssim"], ".3f"), None])
    rows.append([f"3D Gaussian, sigma ZYX {sig_txt} px", None, None, None, None, None,
                 f(r["gaussian"]["psnr"], ".2f"), f(r["gaussian"]["ssim"], ".3f"), None])
    table = common.md_table(["", "s/epoch (median, excl. 1st)", "1st epoch s", "ratio vs reference (lower is better)",
                             "training s", "peak RSS MB", "PSNR dB (test, semi-synthetic)", "SSIM (3D)",
                             "parameters"], rows)
    notes = [f"Every row affine-fitted to the clean stack; data range {s['data_range']:g}."]
    gap = r["psnr_gap_dl4mic_minus_careamics"]
    if gap is not None:
        notes.append(f"PSNR dl4mic - CAREamics: {gap:+.2f} dB")
    return "\n".join([head, "", table, ""] + notes)


if __name__ == "__main__":
    sys.exit(main())
