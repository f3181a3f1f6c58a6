"""Reference side of the CARE 3D benchmark: csbdeep CARE (3D, axes ZYX) on TensorFlow/Keras 3.

Runs inside benchmarks/.venv-tf (the CARE 2D benchmark's environment) as a separate process, so its peak
memory is measured on its own.  Usage (run.py does this):  python side_csbdeep.py CONFIG.json

CONFIG.json holds the parameters and the path of an .npz written by run.py with the stacks *already
normalised exactly as dl4mic normalised them* (per-stack 1/99.8 percentiles of the source, dl4mic's
`fixed` range over all training targets for the target):
  train_src/i, train_tgt/i   (Z, Y, X) float32   dl4mic's training stacks
  val_x, val_y               (n, Pz, Py, Px) float32   dl4mic's fixed validation patches
  test_src/i                 (Z, Y, X) float32
It writes RESULT.json (epoch times, losses, prediction time) and PRED.npz with the normalised predictions
of the test stacks (run.py maps them back to the targets' units with dl4mic's inverse normalisation).
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

    P = tuple(int(v) for v in p["patch_size"])  # (Z, Y, X)
    B, E, S = int(p["batch_size"]), int(p["epochs"]), int(p["steps_per_epoch"])
    augment = bool(p["augment"])
    square = P[1] == P[2]
    rng = np.random.default_rng(int(p["seed"]))
    sizes = np.array([float(np.prod(a.shape)) for a in train_src])  # dl4mic weights stacks by volume
    weights = sizes / sizes.sum()

    def random_patch():
        i = int(rng.choice(len(train_src), p=weights))
        starts = [int(rng.integers(0, n - q + 1)) for n, q in zip(train_src[i].shape, P)]
        sl = tuple(slice(s, s + q) for s, q in zip(starts, P))
        return train_src[i][sl], train_tgt[i][sl]

    def dihedral_yx(x, y):
        # one of the 8 symmetries of the square in Y and X (4 flips when YX is not square), as dl4mic augments
        k = int(rng.integers(8)) if square else int(rng.choice((0, 2, 4, 6)))
        x, y = np.rot90(x, k % 4, axes=(1, 2)), np.rot90(y, k % 4, axes=(1, 2))
        if k >= 4:
            x, y = x[..., ::-1], y[..., ::-1]
        return x, y

    sampling = cfg["sampling"]
    if sampling == "online":
        # csbdeep's DataWrapper indexes X/Y per batch and hands every sample to `augmenter`.  X/Y are zero-copy
        # placeholders of the right shape; the augmenter draws a fresh random patch (and YX flip/rotation) from
        # the normalised training stacks for every sample, which is what dl4mic's sampler does.
        n_virtual = E * S * B
        X = np.broadcast_to(np.zeros((1,) + P + (1,), np.float32), (n_virtual,) + P + (1,))
        Y = X

        def augmenter(_x, _y):
            x, y = random_patch()
            if augment:
                x, y = dihedral_yx(x, y)
            return np.ascontiguousarray(x)[..., None], np.ascontiguousarray(y)[..., None]

        pool_mb = 0.0
    else:
        # csbdeep's usual input: a fixed array of patches (one fresh patch per training sample,
        # epochs*steps*batch in all), YX flips/rotations applied on the fly.
        n = int(cfg.get("pool_size") or E * S * B)
        X = np.empty((n,) + P + (1,), np.float32)
        Y = np.empty((n,) + P + (1,), np.float32)
        for j in range(n):
            X[j, ..., 0], Y[j, ..., 0] = random_patch()
        pool_mb = (X.nbytes + Y.nbytes) / 2 ** 20

        def augmenter(x, y):
            if not augment:
                return x, y
            x, y = dihedral_yx(x[..., 0], y[..., 0])
            return np.ascontiguousarray(x)[..., None], np.ascontiguousarray(y)[..., None]

    config = Config(
        axes="ZYX", n_channel_in=1, n_channel_out=1,
        unet_n_depth=int(p["depth"]), unet_n_first=int(p["filters"]), unet_kern_size=int(p["kernel_size"]),
        train_loss=p.get("loss", "mae"), train_epochs=E, train_steps_per_epoch=S, train_batch_size=B,
        train_learning_rate=float(p["learning_rate"]), train_tensorboard=False,
        train_reduce_lr={"factor": float(p.get("lr_factor", 0.5)), "patience": int(p.get("lr_patience", 10)),
                         "verbose": False},
    )
    model = CARE(config, "csbdeep_care3d", basedir=cfg["workdir"])
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

    # CARE.train ends by loading weights_best.h5 (the best validation loss), as dl4mic predicts with best.pt
    preds = {}
    t0 = time.perf_counter()
    for i, img in enumerate(test_src):  # whole stack, csbdeep pads/crops to multiples of 2**depth
        preds[f"test_pred/{i}"] = np.asarray(model.predict(img, "ZYX", normalizer=None), np.float32)
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
        "prediction_weights": "best validation loss (weights_best.h5)",
        "epochs": epochs,
    }
    common.write_side_result(cfg, result, t_start)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main(sys.argv[1]))
