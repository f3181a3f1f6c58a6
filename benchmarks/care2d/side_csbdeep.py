"""Reference side of the CARE 2D benchmark: csbdeep CARE on TensorFlow/Keras.

Runs inside the benchmark's own virtual environment (benchmarks/.venv-tf) as a
separate process, so its peak memory is measured on its own.  Usage (run.py
does this):  python side_csbdeep.py CONFIG.json

CONFIG.json holds the parameters and the path of an .npz written by run.py with
the images *already normalised exactly as dl4mic normalised them* (per-image
percentiles for the source, dl4mic's fixed dataset range for the target):
  train_src/i, train_tgt/i, val_src/i, val_tgt/i   (H, W) float32
  val_x, val_y                                     (n, P, P) float32 validation patches
  test_src/i                                       (H, W) float32
It writes RESULT.json (epoch times, losses, prediction time) and PRED.npz with
the normalised predictions of the test images (run.py maps them back to raw
intensities with the same inverse normalisation used for dl4mic).
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
    from csbdeep.models import CARE, Config

    keras.utils.set_random_seed(int(p["seed"]))
    t_import = time.perf_counter() - t_start

    data = np.load(cfg["data"])

    def stack(prefix):
        keys = sorted((k for k in data.files if k.startswith(prefix + "/")), key=lambda k: int(k.split("/")[1]))
        return [np.asarray(data[k], np.float32) for k in keys]

    train_src, train_tgt = stack("train_src"), stack("train_tgt")
    test_src = stack("test_src")
    val_x = np.asarray(data["val_x"], np.float32)[..., None]
    val_y = np.asarray(data["val_y"], np.float32)[..., None]

    P = int(p["patch_size"])
    B = int(p["batch_size"])
    E = int(p["epochs"])
    S = int(p["steps_per_epoch"])
    augment = bool(p["augment"])
    rng = np.random.default_rng(int(p["seed"]))
    sizes = np.array([(a.shape[0] - P + 1) * (a.shape[1] - P + 1) for a in train_src], np.float64)
    weights = sizes / sizes.sum() if cfg.get("weight_by_area", True) else None

    def random_patch():
        i = int(rng.choice(len(train_src), p=weights))
        h, w = train_src[i].shape
        y0 = int(rng.integers(0, h - P + 1))
        x0 = int(rng.integers(0, w - P + 1))
        return train_src[i][y0:y0 + P, x0:x0 + P], train_tgt[i][y0:y0 + P, x0:x0 + P]

    def flip_rot(x, y):
        k = int(rng.integers(0, 4))
        x, y = np.rot90(x, k), np.rot90(y, k)
        if rng.integers(0, 2):
            x, y = x[:, ::-1], y[:, ::-1]
        return x, y

    sampling = cfg["sampling"]
    if sampling == "online":
        # csbdeep's DataWrapper indexes X/Y per batch and hands every sample to
        # `augmenter`.  X/Y here are zero-copy placeholders of the right shape;
        # the augmenter draws a fresh random patch (and flip/rotation) from the
        # normalised training images for every sample, which is what dl4mic's
        # sampler does.  No patch array is held in memory.
        n_virtual = E * S * B
        X = np.broadcast_to(np.zeros((1, P, P, 1), np.float32), (n_virtual, P, P, 1))
        Y = X

        def augmenter(_x, _y):
            x, y = random_patch()
            if augment:
                x, y = flip_rot(x, y)
            return np.ascontiguousarray(x)[..., None], np.ascontiguousarray(y)[..., None]

        pool_mb = 0.0
    else:
        # csbdeep's usual input: a fixed array of patches (here one fresh patch
        # per training sample, epochs*steps*batch in all), flips/rotations
        # applied on the fly by the augmenter.
        n = int(cfg.get("pool_size") or E * S * B)
        X = np.empty((n, P, P, 1), np.float32)
        Y = np.empty((n, P, P, 1), np.float32)
        for j in range(n):
            x, y = random_patch()
            X[j, ..., 0], Y[j, ..., 0] = x, y
        pool_mb = (X.nbytes + Y.nbytes) / 2 ** 20

        def augmenter(x, y):
            if not augment:
                return x, y
            k = int(rng.integers(0, 4))
            x, y = np.rot90(x, k, axes=(0, 1)), np.rot90(y, k, axes=(0, 1))
            if rng.integers(0, 2):
                x, y = x[:, ::-1], y[:, ::-1]
            return np.ascontiguousarray(x), np.ascontiguousarray(y)

    config = Config(
        axes="YX", n_channel_in=1, n_channel_out=1,
        unet_n_depth=int(p["depth"]), unet_n_first=int(p["filters"]), unet_kern_size=int(p["kernel_size"]),
        train_loss=p.get("loss", "mae"), train_epochs=E, train_steps_per_epoch=S, train_batch_size=B,
        train_learning_rate=float(p["learning_rate"]), train_tensorboard=False,
        train_reduce_lr={"factor": float(p.get("lr_factor", 0.5)), "patience": int(p.get("lr_patience", 10)),
                         "verbose": False},
    )
    model = CARE(config, "csbdeep_care2d", basedir=cfg["workdir"])
    model.prepare_for_training()

    epochs = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            lr = logs.get("learning_rate", logs.get("lr"))
            epochs.append({"epoch": epoch + 1, "seconds": time.perf_counter() - self._t,
                           "loss": float(logs.get("loss", float("nan"))),
                           "val_loss": float(logs.get("val_loss", float("nan"))),
                           "lr": None if lr is None else float(lr)})
            print(f"[csbdeep] epoch {epoch + 1}/{E}: {epochs[-1]['seconds']:.2f} s "
                  f"loss {epochs[-1]['loss']:.4f} val_loss {epochs[-1]['val_loss']:.4f}", flush=True)

    # Last, so an epoch's time includes validation and csbdeep's checkpoint writes.
    model.callbacks.append(EpochTimer())
    n_params = int(model.keras_model.count_params())

    t0 = time.perf_counter()
    model.train(X, Y, validation_data=(val_x, val_y), augmenter=augmenter)
    train_s = time.perf_counter() - t0

    preds = {}
    t0 = time.perf_counter()
    for i, img in enumerate(test_src):
        preds[f"test_pred/{i}"] = np.asarray(model.predict(img, "YX", normalizer=None), np.float32)
    predict_s = time.perf_counter() - t0
    np.savez(cfg["pred"], **preds)

    result = {
        "side": "csbdeep",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "csbdeep": __import__("csbdeep").__version__, "numpy": np.__version__},
        "threads": common.tf_thread_counts(),
        "sampling": sampling,
        "patch_pool_mb": pool_mb,
        "n_params": n_params,
        "import_s": t_import,
        "train_s": train_s,
        "predict_s": predict_s,
        "epochs": epochs,
    }
    common.write_side_result(cfg, result, t_start)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main(sys.argv[1]))
