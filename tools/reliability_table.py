"""The bad-input matrix as a table for docs/reliability.md: each case of tests/reliability/test_matrix.py and
the sentence dl4mic answers it with (paths shortened to the case's work folder).

    python tools/reliability_table.py > /tmp/matrix.md

It trains the matrix's two tiny models (about 15 s), runs every case in a fresh folder, and checks the
same three things as the tests (exit code 2, one line, nothing changed); a case that does not hold is
marked FAILED in the table.
"""

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import cli  # noqa: E402
from reliability.test_matrix import CASE_ENV, CASES, pairs, tree_hash  # noqa: E402


def train_models(root: Path) -> Path:
    tiny = ["--param", "epochs=1", "--param", "steps_per_epoch=1", "--param", "batch_size=2", "--param",
            "patch_size=32", "--param", "depth=1", "--param", "filters=4", "--param", "val_split=0.34",
            "--progress", "none"]
    s, t = pairs(root / "unet", kind="mask")
    assert cli("train", "unet2d", "--source", s, "--target", t, "--model", root / "unet2d", *tiny) == 0
    s, t = pairs(root / "sd", kind="labels")
    assert cli("train", "stardist2d", "--source", s, "--target", t, "--model", root / "stardist2d", *tiny,
               "--param", "n_rays=8", "--param", "conv_after_unet=8") == 0
    return root


def main():
    rows = ["| case | dl4mic's answer (exit code 2) |", "| --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with contextlib.redirect_stdout(io.StringIO()):
            models = train_models(tmp / "models")
        for n, name in enumerate(sorted(CASES)):
            fn, _ = CASES[name]
            root = tmp / f"case{n}" / "work dir"
            root.mkdir(parents=True)
            argv = fn(root, models)
            saved = {key: os.environ.get(key) for key in CASE_ENV.get(name, {})}
            os.environ.update(CASE_ENV.get(name, {}))
            before = tree_hash(root)
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = cli(*argv)
            for key, value in saved.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
            lines = [line for line in err.getvalue().splitlines() if line.strip()]
            ok = code == 2 and len(lines) == 1 and tree_hash(root) == before
            message = (lines[0] if lines else "").replace(str(root) + "/", "").replace(str(root), ".")
            message = message.replace(str(models) + "/", "MODELS/").replace("|", "\\|")
            rows.append(f"| {name} | {'' if ok else '**FAILED** '}{message} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
