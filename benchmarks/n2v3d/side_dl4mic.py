"""dl4mic side of the N2V 3D benchmark: `dl4mic.train("n2v3d", ...)` on the degraded (noisy) stacks alone,
then prediction of the noisy test stack exactly as `dl4mic predict` does it.

Runs as its own process (run.py starts it) so its peak memory is measured on its own.
Usage:  python side_dl4mic.py CONFIG.json   ->  RESULT.json and PRED.npz (float32, in the noisy stacks'
units, not clipped; the default tile covers a 60x128x128 stack in one pass).
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

    from dl4mic.predict.model import load_model

    t_import = time.perf_counter() - t_start
    model_dir, train_s = common.train_dl4mic("n2v3d", cfg)  # cfg has no target: N2V trains on the noisy stacks
    epochs = common.read_epoch_log(model_dir, no_value=("", "nan"))

    model = load_model(model_dir)
    n_params = common.count_parameters(model.module)
    preds, predict_s = common.predict_test_images(model, cfg, "restored", np.float32)
    np.savez(cfg["pred"], **preds)
    result = {**common.dl4mic_side_identity(), "n_params": n_params, "import_s": t_import, "train_s": train_s,
              "predict_s": predict_s, "epochs": epochs}
    common.write_side_result(cfg, result, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
