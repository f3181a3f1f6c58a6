#!/usr/bin/env python3
"""StarDist 2D: dl4mic (PyTorch) against the reference, stardist's StarDist2D (TensorFlow/Keras), in one run.

    .venv/bin/python benchmarks/stardist2d/run.py --quick        # smoke test: 3 epochs x 10 steps
    .venv/bin/python benchmarks/stardist2d/run.py                # 50 epochs x 100 steps x 4 x 128x128
    .venv/bin/python benchmarks/stardist2d/run.py --data ../shared/data/ctc_fluo_n2dh_gowt1 --patch-size 256

Run it with the project's Python (the one that imports dl4mic).  The reference runs in
benchmarks/.venv-tf (tensorflow-cpu 2.21, csbdeep 0.8.2, tensorboard; shared with the CARE benchmark),
into which `stardist==0.9.2` is installed on first use; the venv is created if missing.

What is the same on both sides
  * data: DATA/train/{images,masks} split into training and validation files by dl4mic (read back from
    its model.yaml), every image normalised by dl4mic's own code (per-image 1 / 99.8 percentiles),
    label holes filled (stardist.utils.fill_label_holes) for both; the test set DATA/test/{images,masks};
  * network: n_rays 32, grid 2, U-Net depth 3 / 32 filters / kernel 3 / no batch norm, 128-channel
    3x3 convolution before the heads (the reference defaults, parameter counts reported);
  * training: patch size, batch size, steps per epoch, epochs, Adam at the same learning rate,
    ReduceLROnPlateau(0.5, patience 40), loss weights (1, 0.2), background regularisation 1e-4,
    90% foreground patches, the same number of validation patches, best-validation weights kept;
    augmentation: a random dihedral map (flips / 90-degree rotations) and intensity jitter
    x * U(0.6, 2) + U(-0.2, 0.2) on both sides;
  * thresholds: each side optimises (prob, nms) on the whole validation images by the reference's
    procedure (golden-section on prob for nms in {0.3, 0.4, 0.5}, mean accuracy at IoU 0.3/0.5/0.7);
  * threads: the same count for both processes; dl4mic trains in float32 unless --precision says so;
  * evaluation: one function, dl4mic.qc.metrics.instance_metrics_many (stardist.matching, object counts
    pooled over the test images): F1 at IoU 0.5 and mean AP (IoU 0.5:0.05:0.95, DSB 2018 definition).
Per-epoch times: dl4mic's training/log.csv; the reference a Keras callback (both include validation);
the first epoch is reported separately, the per-epoch figure is the median of the others.  Peak RSS is
each subprocess's own (wait4), training + threshold optimisation + prediction.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402

BASE_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "csbdeep==0.8.2", "tensorboard"]  # benchmarks/care2d's venv
STARDIST_REQUIREMENT = "stardist==0.9.2"
EPOCH_SUMMARY_KEYS = ("first_epoch_s", "median_epoch_s", "mean_epoch_s", "final_loss", "best_val_loss")

#: what differs between the StarDist 2D and 3D benchmarks (benchmarks/stardist3d/run.py passes its own)
FLAVOUR_2D = {
    "network": "stardist2d", "dims": 2, "doc": __doc__,
    "data": common.REPO_DIR.parent / "shared" / "data" / "dsb2018_stage1test_nuclei_gray",
    "epochs": 50, "batch_size": 4, "patch_size": "128", "n_rays": 32, "grid": "2", "anisotropy": None, "depth": 3,
    "patch_help": "(DSB's smallest image side is 161)", "results": HERE / "results",
}


def sizes(text, dims: int) -> list:
    """'48,96,96' or one number for every axis -> a list of `dims` numbers (ints where they are whole)."""
    values = [float(v) for v in str(text).replace("x", ",").split(",") if v.strip()]
    values = values * dims if len(values) == 1 else values
    if len(values) != dims:
        raise SystemExit(f"{text!r} needs 1 or {dims} numbers")
    return [int(v) if v == int(v) else v for v in values]


def parse_args(argv=None, flavour=FLAVOUR_2D):
    f = flavour
    ap = argparse.ArgumentParser(description=f["doc"].split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=f["data"],
                    help="folder with train/{images,masks} and test/{images,masks} (default: %(default)s)")
    ap.add_argument("--epochs", type=int, help=f"epochs (default {f['epochs']}; --quick: 3)")
    ap.add_argument("--steps", type=int, help="steps per epoch (default 100; --quick: 10)")
    ap.add_argument("--batch-size", type=int, default=f["batch_size"])
    ap.add_argument("--patch-size", default=f["patch_size"], help=f"one size or one per axis {f['patch_help']}")
    ap.add_argument("--n-rays", type=int, default=f["n_rays"])
    ap.add_argument("--grid", default=f["grid"], help="one factor or one per axis")
    if f["dims"] == 3:
        ap.add_argument("--anisotropy", default=f["anisotropy"], help="Z,Y,X (default %(default)s)")
    ap.add_argument("--learning-rate", type=float, default=3e-4)
    ap.add_argument("--val-patches", type=int, default=16)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke test: 3 epochs x 10 steps")
    ap.add_argument("--threads", type=int, default=2, help="compute threads for each side (default 2)")
    ap.add_argument("--precision", default="float32", choices=["auto", "float32", "bfloat16"],
                    help="dl4mic's training arithmetic (default float32, as the reference)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--venv", type=Path, default=common.BENCH_DIR / ".venv-tf",
                    help="virtual environment of the reference (created or extended if needed)")
    ap.add_argument("--only", choices=["dl4mic", "stardist"], help="run one side only (debugging)")
    ap.add_argument("--results", type=Path, default=f["results"])
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--workdir", type=Path, help="keep models and logs here (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="do not delete the temporary work folder")
    a = ap.parse_args(argv)
    a.dims, a.network = f["dims"], f["network"]
    a.patch = sizes(a.patch_size, f["dims"])
    a.grid_axes = sizes(a.grid, f["dims"])
    a.anisotropy_axes = sizes(a.anisotropy, 3) if f["dims"] == 3 else None
    a.depth = f["depth"]
    if a.epochs is None:
        a.epochs = 3 if a.quick else f["epochs"]
    if a.steps is None:
        a.steps = 10 if a.quick else 100
    return a


log = common.make_log("stardist")


def reference_python(venv: Path) -> Path:
    """The reference venv's python with stardist importable (creating or extending the venv)."""
    python = venv / "bin" / "python"
    if not python.exists():
        common.ensure_venv(venv, BASE_REQUIREMENTS, log=log)
    ok = subprocess.run([str(python), "-c", "import stardist, tensorflow"], capture_output=True).returncode == 0
    if not ok:
        log(f"installing {STARDIST_REQUIREMENT} into {venv} (once) ...")
        subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                        STARDIST_REQUIREMENT], check=True)
    return python


def dl4mic_params(a) -> dict:
    """dl4mic's parameters (the reference side reads the same dict, with `reference_sizes` beside it)."""
    three_d = {"anisotropy": ",".join(map(str, a.anisotropy_axes))} if a.dims == 3 else {}
    return {"steps_per_epoch": a.steps, "batch_size": a.batch_size,
            "patch_size": a.patch if a.dims == 3 else a.patch[0], "n_rays": a.n_rays,
            "grid": ",".join(map(str, a.grid_axes)) if a.dims == 3 else a.grid_axes[0], **three_d,
            "depth": a.depth, "filters": 32, "kernel_size": 3, "batch_norm": False,
            "conv_after_unet": 128, "learning_rate": a.learning_rate, "val_split": 0.1, "seed": a.seed,
            "lr_patience": 40, "lr_factor": 0.5, "dist_loss_weight": 0.2, "background_reg": 1e-4,
            "foreground_prob": 0.9, "augment": not a.no_augment, "intensity_jitter": True,
            "val_patches": a.val_patches, "precision": a.precision, "optimize_thresholds": True}


def reference_sizes(a) -> dict:
    """Patch, grid and anisotropy per axis, for the reference's Config2D / Config3D."""
    return {"dims": a.dims, "patch": a.patch, "grid": a.grid_axes, "anisotropy": a.anisotropy_axes}


def reference_inputs(model_dir: Path, source: Path, target: Path, test_source: Path, test_files: list[str],
                     out: Path, dims: int = 2) -> dict:
    """dl4mic's split and normalisation, applied to whole images for the reference (np.savez)."""
    import numpy as np

    from dl4mic.data.io import read_image
    from dl4mic.data.normalize import Normalizer, scale
    from dl4mic.networks.stardist2d import prepare_labels
    from dl4mic.predict.model import read_model_config

    cfg = read_model_config(model_dir)
    if cfg["data"]["split"] != "files":
        raise SystemExit("dl4mic split one image into strips; the benchmark needs at least two training images")
    normalizer = Normalizer(cfg["normalization"], spatial_dims=dims)
    arrays = {}

    def norm(path):
        img = read_image(path)
        return scale(img, *normalizer.source_range(img))

    for prefix, names in (("train", cfg["data"]["train_files"]), ("val", cfg["data"]["val_files"])):
        for i, name in enumerate(names):
            arrays[f"{prefix}_x/{i}"] = norm(source / name)
            arrays[f"{prefix}_y/{i}"] = prepare_labels(read_image(target / name))
    for i, name in enumerate(test_files):
        arrays[f"test_x/{i}"] = norm(test_source / name)
    np.savez(out, **arrays)
    return {"config": cfg, "train_files": cfg["data"]["train_files"], "val_files": cfg["data"]["val_files"]}


def score(pred_npz: Path, truths: list) -> dict:
    import numpy as np

    pred = np.load(pred_npz)
    return score_labels([pred[f"test_pred/{i}"] for i in range(len(truths))], truths)


def score_labels(preds: list, truths: list) -> dict:
    from dl4mic.qc.metrics import instance_metrics, instance_metrics_many

    pooled = instance_metrics_many(truths, preds)
    per_image = [instance_metrics(t, p) for t, p in zip(truths, preds)]
    at = pooled["at_0.5"]
    return {"f1": at["f1"], "precision": at["precision"], "recall": at["recall"], "mean_ap": pooled["mean_ap"],
            "panoptic_quality": at["panoptic_quality"], "n_true": at["n_true"], "n_pred": at["n_pred"],
            "per_image_f1": [r["at_0.5"]["f1"] for r in per_image],
            "per_image_mean_ap": [r["mean_ap"] for r in per_image]}


def baseline_scores(test_source: Path, test_files: list[str], truths: list, spacing=None) -> dict:
    """dl4mic QC's two instance baselines on the test images, scored like the networks: Otsu + connected
    components, and Otsu + a distance-transform watershed (distances in `spacing` units, per axis)."""
    from dl4mic.data.io import read_image
    from dl4mic.qc import baselines as bl

    images = [read_image(test_source / n) for n in test_files]
    _, polarity, _ = bl.otsu_baseline(images, [t > 0 for t in truths])
    return {"polarity": polarity,
            "otsu": score_labels([bl.otsu_instances(im, polarity) for im in images], truths),
            "otsu_watershed": score_labels([bl.otsu_watershed_instances(im, polarity, spacing=spacing)
                                            for im in images], truths)}


def main(argv=None, flavour=FLAVOUR_2D) -> int:
    a = parse_args(argv, flavour)
    source, target = a.data / "train" / "images", a.data / "train" / "masks"
    test_source, test_target = a.data / "test" / "images", a.data / "test" / "masks"
    for d in (source, target, test_source, test_target):
        if not d.is_dir():
            raise SystemExit(f"{d} does not exist; give --data a folder with train/ and test/ images/ and masks/")
    test_files = common.tiff_names(test_source)
    ref_python = reference_python(a.venv) if a.only != "dl4mic" else None

    work = common.work_folder(a.workdir, f"dl4mic-{a.network}-bench-", log)
    env = common.thread_env(a.threads)
    load = {"start": common.load_average()}
    params = dl4mic_params(a)
    params["epochs"] = a.epochs

    # ---- dl4mic --------------------------------------------------------------------------------
    model_dir = work / "dl4mic_model"
    cfg_d = {"network": a.network, "source": str(source), "target": str(target), "model": str(model_dir), "params": params,
             "threads": a.threads, "test_source": str(test_source), "test_files": test_files}
    log(f"dl4mic {a.network}: {a.epochs} epochs x {a.steps} steps x batch {a.batch_size} x "
        f"{'x'.join(map(str, a.patch))} on {a.data.name} ...")
    run_d, res_d = common.run_side("dl4mic", sys.executable, HERE / "side_dl4mic.py", cfg_d,
                                   work=work, env=env, load=load, log=log)

    # ---- reference ------------------------------------------------------------------------------
    ref = reference_inputs(model_dir, source, target, test_source, test_files, work / "ref_data.npz", a.dims)
    res_r, run_r = None, None
    if a.only != "dl4mic":
        cfg_r = {"params": params, "sizes": reference_sizes(a), "threads": a.threads, "data": str(work / "ref_data.npz"),
                 "workdir": str(work / "stardist_models")}
        log("stardist (reference): same settings ...")
        run_r, res_r = common.run_side("stardist", ref_python, HERE.parent / "stardist2d" / "side_stardist.py", cfg_r,
                                       work=work, env=env, load=load, log=log)

    # ---- quality --------------------------------------------------------------------------------
    from dl4mic.data.io import read_image

    truths = [read_image(test_target / n) for n in test_files]
    q_d = score(work / "dl4mic_pred.npz", truths)
    q_r = score(work / "stardist_pred.npz", truths) if res_r else None
    base = baseline_scores(test_source, test_files, truths, a.anisotropy_axes)

    def side(res, run, q):
        if res is None:
            return None
        return {**common.summarise_epochs(res["epochs"], EPOCH_SUMMARY_KEYS), "train_s": res["train_s"],
                "threshold_s": res["threshold_s"], "predict_s": res["predict_s"], "peak_rss_mb": run["peak_rss_mb"],
                "process_wall_s": run["wall_s"], "cpu_s": run["user_s"] + run["sys_s"], "n_params": res["n_params"],
                "versions": res["versions"], "threads": res["threads"], "thresholds": res["thresholds"], **q,
                "epochs": res["epochs"]}

    d, r = side(res_d, run_d, q_d), side(res_r, run_r, q_r)
    ratio = (d["median_epoch_s"] / r["median_epoch_s"]) if r and d["median_epoch_s"] and r["median_epoch_s"] else None
    result = {
        **common.result_header(a.network, load),
        "settings": {"data": str(a.data), "epochs": a.epochs, "steps_per_epoch": a.steps, "batch_size": a.batch_size,
                     "patch_size": a.patch, "n_rays": a.n_rays, "grid": a.grid_axes,
                     "anisotropy": a.anisotropy_axes, "threads": a.threads,
                     "seed": a.seed, "val_patches": a.val_patches, "augment": not a.no_augment,
                     "dl4mic_precision": res_d.get("precision"), "train_files": ref["train_files"],
                     "val_files": ref["val_files"], "test_files": test_files,
                     "network": {"depth": a.depth, "filters": 32, "kernel_size": 3, "conv_after_unet": 128,
                                 "learning_rate": a.learning_rate}},
        "dl4mic": d,
        "stardist": r,
        "baselines": base,
        "ratio_epoch_time_dl4mic_over_stardist": ratio,
        "f1_difference_dl4mic_minus_stardist": (d["f1"] - r["f1"]) if r else None,
    }
    out = common.new_result_path(a.results, a.data.name, quick=a.quick, tag=a.tag)
    common.write_json(out, result)
    print(report_markdown(result))
    print(f"\nresults: {out}")
    common.finish_work_folder(work, keep=a.workdir is not None or a.keep, contents="models, logs")
    return 0


def report_markdown(r: dict) -> str:
    s = r["settings"]
    patch = s["patch_size"] if isinstance(s["patch_size"], list) else [s["patch_size"]] * 2
    grid = s["grid"] if isinstance(s["grid"], list) else [s["grid"]]
    aniso = f", anisotropy {','.join(map(str, s['anisotropy']))}" if s.get("anisotropy") else ""
    head = (f"StarDist {len(patch)}D on {Path(s['data']).name}, {s['epochs']} epochs x {s['steps_per_epoch']} steps x "
            f"batch {s['batch_size']} x {'x'.join(map(str, patch))}, n_rays {s['n_rays']}, grid "
            f"{','.join(map(str, grid))}{aniso}, "
            f"{s['threads']} threads, dl4mic precision {s['dl4mic_precision']}; {r['machine']['cpu']}; "
            f"load average {r['load_average']['start']} -> {r['load_average'].get('after_stardist')}")

    f = common.format_or_none

    rows = []
    ratio = r["ratio_epoch_time_dl4mic_over_stardist"]
    for label, x, rat in (("dl4mic", r["dl4mic"], ratio), ("stardist (reference)", r["stardist"], 1.0)):
        if x is None:
            continue
        v = x["versions"]
        label += f" ({', '.join(f'{k} {v[k]}' for k in ('dl4mic', 'torch', 'stardist', 'tensorflow') if k in v)})"
        rows.append([label, f(x["median_epoch_s"], ".2f"), f(x["first_epoch_s"], ".2f"), f(rat, ".2f"),
                     f(x["train_s"], ".0f"), f(x["peak_rss_mb"], ".0f"), f(x["f1"], ".3f"), f(x["mean_ap"], ".3f"),
                     f"{x['thresholds']['prob']:.3g} / {x['thresholds']['nms']:.2g}", x["n_params"]])
    for label, key in (("Otsu + connected components", "otsu"), ("Otsu + distance watershed", "otsu_watershed")):
        x = (r.get("baselines") or {}).get(key)
        if x:
            rows.append([label] + ["–"] * 5 + [f(x["f1"], ".3f"), f(x["mean_ap"], ".3f"), "–", "–"])
    table = common.md_table(["", "s/epoch (median, excl. 1st)", "1st epoch s", "ratio vs reference",
                             "training s", "peak RSS MB", "F1@0.5 (test)", "mean AP", "prob / nms thresh",
                             "parameters"], rows)
    notes = []
    if r["stardist"] and r["dl4mic"]["n_params"] != r["stardist"]["n_params"]:
        notes.append(f"note: the networks differ in size ({r['dl4mic']['n_params']} vs "
                     f"{r['stardist']['n_params']} parameters).")
    return "\n".join([head, "", table] + ([""] + notes if notes else []))


if __name__ == "__main__":
    sys.exit(main())
