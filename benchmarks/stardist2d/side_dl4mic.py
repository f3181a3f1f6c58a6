"""dl4mic side of the StarDist 2D and 3D benchmarks: `dl4mic.train(network, ...)`, then the test images
predicted exactly as `dl4mic predict` does (tiled, NMS with the thresholds optimised on validation).

Runs as its own process (run.py starts it with the project's Python) so that its peak memory is
measured on its own.  Usage:  python side_dl4mic.py CONFIG.json
Writes RESULT.json (per-epoch log from MODEL/training/log.csv, wall times, thresholds) and PRED.npz
with the uint16 label image of every test image.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402  benchmarks/common.py


def main(cfg_path: str) -> int:
    cfg = json.loads(Path(cfg_path).read_text())
    t_start = time.perf_counter()
    common.import_dl4mic(cfg["threads"])
    import numpy as np
    import yaml

    from dl4mic.predict.model import load_model

    t_import = time.perf_counter() - t_start
    model_dir, train_s = common.train_dl4mic(cfg.get("network", "stardist2d"), cfg)
    config = yaml.safe_load((model_dir / "model.yaml").read_text())
    epochs = common.read_epoch_log(model_dir)
    loop_s = sum(e["seconds"] for e in epochs)

    model = load_model(model_dir)
    n_params = common.count_parameters(model.module)
    preds, predict_s = common.predict_test_images(model, cfg, "labels")
    np.savez_compressed(cfg["pred"], **preds)

    result = {
        **common.dl4mic_side_identity(),
        "n_params": n_params,
        "import_s": t_import,
        "train_s": train_s,
        "threshold_s": max(0.0, train_s - loop_s),  # threshold optimisation, reports and set-up
        "predict_s": predict_s,
        "thresholds": {"prob": config.get("prob_thresh"), "nms": config.get("nms_thresh"),
                       "details": config.get("thresholds")},
        "precision": config.get("environment", {}).get("precision"),
        "epochs": epochs,
    }
    common.write_side_result(cfg, result, t_start, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
