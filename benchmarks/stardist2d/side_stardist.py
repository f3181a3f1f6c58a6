"""Reference side of the StarDist 2D and 3D benchmarks: stardist's StarDist2D / StarDist3D (TensorFlow/Keras)
trained on the data run.py prepared with dl4mic's own normalisation and split, then `optimize_thresholds`
on the validation images and `predict_instances` on the test images (`sizes.dims` picks 2D or 3D).

Runs in the reference virtual environment (tensorflow-cpu, csbdeep, stardist; no dl4mic).
Usage:  python side_stardist.py CONFIG.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402  benchmarks/common.py (standard library only at import)


def main(cfg_path: str) -> int:
    cfg = json.loads(Path(cfg_path).read_text())
    p = cfg["params"]
    t_start = time.perf_counter()
    import numpy as np
    import tensorflow as tf

    common.set_tf_threads(cfg["threads"])
    import keras
    import stardist
    import csbdeep
    from stardist.models import Config2D, Config3D, StarDist2D, StarDist3D
    from stardist.rays3d import Rays_GoldenSpiral

    t_import = time.perf_counter() - t_start
    data = np.load(cfg["data"])

    def series(prefix):
        n = sum(1 for k in data.files if k.startswith(prefix + "/"))
        return [data[f"{prefix}/{i}"] for i in range(n)]

    X, Y = series("train_x"), series("train_y")
    Xv, Yv = series("val_x"), series("val_y")
    Xt = series("test_x")
    sizes = cfg.get("sizes") or {"dims": 2, "patch": [int(p["patch_size"])] * 2, "grid": [int(p["grid"])] * 2}
    dims = int(sizes["dims"])
    if dims == 3:  # Config3D: rays on the golden spiral scaled by the anisotropy (the example notebook's set-up)
        anisotropy = tuple(float(v) for v in sizes["anisotropy"])
        shape_kwargs = {"rays": Rays_GoldenSpiral(int(p["n_rays"]), anisotropy=anisotropy), "anisotropy": anisotropy}
        config_class, model_class = Config3D, StarDist3D
    else:
        shape_kwargs = {"n_rays": int(p["n_rays"])}
        config_class, model_class = Config2D, StarDist2D
    conf = config_class(
        **shape_kwargs, grid=tuple(int(g) for g in sizes["grid"]), n_channel_in=1,
        unet_n_depth=int(p["depth"]), unet_n_filter_base=int(p["filters"]),
        unet_kernel_size=(int(p["kernel_size"]),) * dims, unet_batch_norm=bool(p["batch_norm"]),
        net_conv_after_unet=int(p["conv_after_unet"]),
        train_patch_size=tuple(int(v) for v in sizes["patch"]), train_batch_size=int(p["batch_size"]),
        train_epochs=int(p["epochs"]), train_steps_per_epoch=int(p["steps_per_epoch"]),
        train_learning_rate=float(p["learning_rate"]), train_n_val_patches=int(p["val_patches"]),
        train_loss_weights=(1, float(p["dist_loss_weight"])), train_background_reg=float(p["background_reg"]),
        train_foreground_only=float(p["foreground_prob"]),
        train_reduce_lr={"factor": float(p["lr_factor"]), "patience": int(p["lr_patience"]), "min_delta": 0},
        train_tensorboard=False, use_gpu=False,
    )
    model = model_class(conf, name="reference", basedir=cfg["workdir"])
    model.prepare_for_training()

    epochs = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            epochs.append({"epoch": epoch + 1, "seconds": time.perf_counter() - self.t0,
                           "loss": float(logs.get("loss", float("nan"))),
                           "val_loss": float(logs["val_loss"]) if "val_loss" in logs else None})

    model.callbacks.append(EpochTimer())
    augment, jitter = bool(p["augment"]), bool(p["augment"]) and bool(p["intensity_jitter"])
    rng = np.random.default_rng(int(p["seed"]) + 7)

    def augmenter(x, y):  # the same augmentation as dl4mic: one of the 8 dihedral maps of YX, intensity jitter
        if augment:
            k = int(rng.integers(8)) if x.shape[-1] == x.shape[-2] else int(rng.choice([0, 2, 4, 6]))
            x, y = np.rot90(x, k % 4, axes=(-2, -1)), np.rot90(y, k % 4, axes=(-2, -1))
            if k >= 4:
                x, y = x[..., ::-1], y[..., ::-1]
            x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        if jitter:
            x = (x * np.float32(rng.uniform(0.6, 2.0)) + np.float32(rng.uniform(-0.2, 0.2))).astype(np.float32)
        return x, y

    np.random.seed(int(p["seed"]))
    t0 = time.perf_counter()
    model.train(X, Y, validation_data=(Xv, Yv), augmenter=augmenter, epochs=int(p["epochs"]),
                steps_per_epoch=int(p["steps_per_epoch"]))
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    thresholds = model.optimize_thresholds(Xv, Yv)
    threshold_s = time.perf_counter() - t0

    preds = {}
    t0 = time.perf_counter()
    for i, x in enumerate(Xt):
        labels, _ = model.predict_instances(x, n_tiles=model._guess_n_tiles(x), show_tile_progress=False)
        preds[f"test_pred/{i}"] = labels.astype(np.uint16 if labels.max() <= 65535 else np.uint32)
    predict_s = time.perf_counter() - t0
    np.savez_compressed(cfg["pred"], **preds)

    result = {
        "side": "stardist",
        "versions": {"stardist": stardist.__version__, "csbdeep": csbdeep.__version__,
                     "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
        "threads": {**common.tf_thread_counts(), "omp": os.environ.get("OMP_NUM_THREADS")},
        "n_params": int(model.keras_model.count_params()),
        "import_s": t_import,
        "train_s": train_s,
        "threshold_s": threshold_s,
        "predict_s": predict_s,
        "thresholds": {"prob": float(thresholds["prob"]), "nms": float(thresholds["nms"])},
        "epochs": epochs,
    }
    common.write_side_result(cfg, result, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
