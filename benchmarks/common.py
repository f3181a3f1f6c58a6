"""Helpers shared by the benchmarks: reference virtual environments, measured
subprocesses (wall time and peak RSS of exactly that child), the drivers' and
side scripts' common steps, metrics and the machine description written next
to every result.

Only the standard library is imported at module level (numpy, torch,
TensorFlow and dl4mic only inside functions), so the side scripts of the
reference implementations can import it from their own virtual environments.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


def set_torch_threads(threads: int) -> None:
    """Give a PyTorch side exactly `threads` intra- and inter-op threads (same as the reference side)."""
    import torch

    torch.set_num_threads(int(threads))
    try:
        torch.set_num_interop_threads(int(threads))
    except RuntimeError:  # already set once in this process
        pass


# --------------------------------------------------------------------------- venvs

def ensure_venv(path: Path, requirements: list[str], log=print, no_deps: list[str] | None = None,
                what: str | None = None) -> Path:
    """Create (once) a virtual environment at `path` with `requirements` installed.

    A marker file records the requirement list; when it differs (or the venv is
    missing) the environment is (re)built with pip.  `no_deps` are installed by a
    second pip call without their dependencies; `what` names the install in the
    log (default: the requirements).  Returns the venv's python.
    """
    path = Path(path)
    python = path / "bin" / "python"
    marker = path / ".dl4mic-bench-requirements"
    wanted = "\n".join(list(requirements) + (["--no-deps", *no_deps] if no_deps else [])) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if not python.exists():
        log(f"creating virtual environment {path} ...")
        venv.EnvBuilder(with_pip=True, clear=False).create(path)
    log(f"installing {what or ' '.join(requirements)} into {path} (once; a few minutes) ...")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, *requirements], check=True)
    if no_deps:
        subprocess.run([*pip, "--no-deps", *no_deps], check=True)
    marker.write_text(wanted)
    return python


# --------------------------------------------------------------------------- measured runs

def thread_env(threads: int, extra: dict | None = None) -> dict:
    """Environment for a child process limited to `threads` compute threads."""
    env = dict(os.environ)
    n = str(int(threads))
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env[k] = n
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def run_measured(cmd: list[str], env: dict | None = None, log_file: Path | None = None,
                 cwd: Path | None = None) -> dict:
    """Run `cmd` to completion; return rc, wall seconds and the child's peak RSS (MB).

    Peak RSS comes from wait4() on this very child (ru_maxrss of the process
    tree's largest member that was waited for), so runs measured one after the
    other do not see each other's peaks, unlike RUSAGE_CHILDREN.
    """
    out = open(log_file, "w") if log_file else None
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out or None,
                                stderr=subprocess.STDOUT if out else None)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if out:
            out.close()
    return {
        "rc": proc.returncode,
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,  # Linux: kilobytes
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
    }


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- drivers (run.py)

def make_log(benchmark: str):
    """A `log(msg)` printing `[BENCHMARK-bench HH:MM:SS] msg` to stderr, so all drivers log alike."""
    def log(msg: str) -> None:
        print(f"[{benchmark}-bench {_dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    return log


def work_folder(workdir: Path | None, prefix: str, log=print) -> Path:
    """The run's folder for models, data and logs: `workdir` if given, else a new temporary one."""
    work = workdir or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    log(f"work folder {work}")
    return work


def run_side(side: str, python, script: Path, config: dict, *, work: Path, env: dict, load: dict,
             log=print, label: str | None = None) -> tuple[dict, dict]:
    """Run one side script in its own measured process; stop with its log's tail if it fails.

    The side reads WORK/SIDE_config.json (`config` plus the `result` and `pred`
    paths WORK/SIDE_result.json and WORK/SIDE_pred.npz) and logs to WORK/SIDE.log;
    the load average after it is recorded as load["after_SIDE"].  Returns the
    measurement (run_measured) and the side's result.
    """
    label = label or side
    cfg_path = work / f"{side}_config.json"
    config = {**config, "result": str(work / f"{side}_result.json"), "pred": str(work / f"{side}_pred.npz")}
    cfg_path.write_text(json.dumps(config, indent=2))
    run = run_measured([str(python), str(script), str(cfg_path)], env=env, log_file=work / f"{side}.log")
    load[f"after_{side}"] = load_average()
    if run["rc"]:
        raise SystemExit(f"{label} side failed (rc {run['rc']}):\n{tail(work / f'{side}.log')}")
    result = json.loads((work / f"{side}_result.json").read_text())
    log(f"{label} done in {run['wall_s']:.0f} s")
    return run, result


EPOCH_SUMMARY_KEYS = ("first_epoch_s", "median_epoch_s", "mean_epoch_s", "min_epoch_s", "max_epoch_s",
                      "final_loss", "best_val_loss")


def summarise_epochs(epochs: list[dict], keys=EPOCH_SUMMARY_KEYS) -> dict:
    """One definition of the per-epoch figures (first epoch apart, the others' median etc.); `keys` picks them."""
    secs = [e["seconds"] for e in epochs]
    rest = secs[1:]
    figures = {
        "first_epoch_s": secs[0] if secs else None,
        "median_epoch_s": median(rest) if rest else (secs[0] if secs else None),
        "mean_epoch_s": (sum(rest) / len(rest)) if rest else None,
        "min_epoch_s": min(rest) if rest else None,
        "max_epoch_s": max(rest) if rest else None,
        "final_loss": epochs[-1]["loss"] if epochs else None,
        "best_val_loss": min((e["val_loss"] for e in epochs if e.get("val_loss") is not None), default=None),
    }
    return {k: figures[k] for k in keys}


def tiff_names(folder: Path) -> list[str]:
    """Sorted names of the .tif/.tiff files in `folder` (a benchmark's test images)."""
    return sorted(f.name for f in Path(folder).iterdir() if f.suffix.lower() in (".tif", ".tiff"))


def result_header(benchmark: str, load: dict) -> dict:
    """The entries every result file starts with: benchmark, date, machine and load averages."""
    return {"benchmark": benchmark, "date": _dt.datetime.now().isoformat(timespec="seconds"),
            "machine": machine_info(), "load_average": load}


def new_result_path(folder: Path, *parts: str, quick: bool = False, tag: str = "") -> Path:
    """FOLDER/DATE[-PART...][-quick][-TAG].json, with -2, -3, ... added so no earlier result is overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    name = "-".join([_dt.date.today().isoformat(), *parts]) + ("-quick" if quick else "") + (f"-{tag}" if tag else "")
    out = folder / f"{name}.json"
    n = 2
    while out.exists():
        out = folder / f"{name}-{n}.json"
        n += 1
    return out


def finish_work_folder(work: Path, keep: bool, contents: str) -> None:
    """Delete the temporary work folder after a run, or print where the kept one is."""
    if keep:
        print(f"work folder ({contents}): {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def format_or_none(v, spec: str):
    """format(v, spec), or None (md_table's dash) where a side has no value."""
    return None if v is None else format(v, spec)


# --------------------------------------------------------------------------- side scripts

def count_parameters(module) -> int:
    """Number of parameters of a torch module: the `n_params` the PyTorch sides report."""
    return int(sum(p.numel() for p in module.parameters()))


def torch_thread_counts() -> dict:
    """The intra-/inter-op thread counts a PyTorch side ran with, for its result."""
    import torch

    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}


def set_tf_threads(threads: int) -> None:
    """Give a TensorFlow side exactly `threads` intra- and inter-op threads (as set_torch_threads for PyTorch)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    tf.config.threading.set_inter_op_parallelism_threads(int(threads))


def tf_thread_counts() -> dict:
    """The intra-/inter-op thread counts a TensorFlow side ran with, for its result."""
    import tensorflow as tf

    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def write_side_result(cfg: dict, result: dict, t_start: float, default=None) -> None:
    """Write a side's result to cfg["result"], its whole run time since `t_start` last, as `process_s`."""
    result["process_s"] = time.perf_counter() - t_start
    Path(cfg["result"]).write_text(json.dumps(result, indent=2, default=default) + "\n")


def import_dl4mic(threads: int) -> None:
    """numpy, torch (set to `threads` threads) and dl4mic: the imports a dl4mic side times as `import_s`."""
    import numpy  # noqa: F401

    set_torch_threads(threads)
    import dl4mic  # noqa: F401
    import dl4mic.data.io  # noqa: F401
    import dl4mic.predict.model  # noqa: F401


def train_dl4mic(network: str, cfg: dict) -> tuple[Path, float]:
    """`dl4mic.train` on a side's config (source, target if any, model, params); returns the model folder, seconds."""
    import dl4mic

    model_dir = Path(cfg["model"])
    data = {k: cfg[k] for k in ("source", "target") if k in cfg}
    t0 = time.perf_counter()
    dl4mic.train(network, **data, model=model_dir, epochs=int(cfg["params"]["epochs"]), params=cfg["params"],
                 progress="none", overwrite=True)
    return model_dir, time.perf_counter() - t0


def read_epoch_log(model_dir: Path, no_value=("",)) -> list[dict]:
    """MODEL/training/log.csv as one dict per epoch; a val_loss written as one of `no_value` becomes None."""
    with open(Path(model_dir) / "training" / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{"epoch": int(r["epoch"]), "seconds": float(r["seconds"]), "loss": float(r["loss"]),
             "val_loss": float(r["val_loss"]) if r.get("val_loss") not in (None, *no_value) else None,
             "lr": float(r["lr"])} for r in rows]


def predict_test_images(model, cfg: dict, output: str, dtype=None) -> tuple[dict, float]:
    """The config's test images through `model.predict` (as `dl4mic predict`), as test_pred/i, and the seconds."""
    import numpy as np

    from dl4mic.data.io import read_image

    preds = {}
    t0 = time.perf_counter()
    for i, name in enumerate(cfg["test_files"]):
        img = read_image(Path(cfg["test_source"]) / name)
        preds[f"test_pred/{i}"] = np.asarray(model.predict(img)[output], dtype)
    return preds, time.perf_counter() - t0


def dl4mic_side_identity() -> dict:
    """`side`, `versions` and `threads`: the entries every dl4mic side's result starts with."""
    import numpy as np
    import torch

    import dl4mic

    return {"side": "dl4mic",
            "versions": {"dl4mic": dl4mic.__version__, "torch": torch.__version__, "numpy": np.__version__},
            "threads": torch_thread_counts()}


# --------------------------------------------------------------------------- metrics

def psnr(pred, ref, data_range: float) -> float:
    """PSNR in dB of `pred` against `ref` (no clipping, no quantisation)."""
    import numpy as np
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(np.asarray(ref, np.float64), np.asarray(pred, np.float64),
                                         data_range=data_range))


def restoration_scores(pred, target, data_range: float, fit: bool = False) -> dict:
    """SSIM, PSNR and NRMSE of `pred` against `target` (images or ZYX volumes) by dl4mic's QC definitions
    (`dl4mic.qc.metrics.restoration_metrics`, explicit data range, no clipping or quantisation).

    With `fit`, `pred` is first mapped to the target's units by the least-squares affine fit a * pred + b
    (`dl4mic.qc.baselines.affine_fit`), for outputs in other units (e.g. Noise2Void trained on a degraded copy
    scored against the clean stack); the coefficients are returned as `fit_a`, `fit_b`."""
    import numpy as np

    from dl4mic.qc.baselines import affine_fit
    from dl4mic.qc.metrics import restoration_metrics

    pred = np.asarray(pred, np.float64)
    out = {}
    if fit:
        fitted = affine_fit(pred, target)
        x = pred.ravel()
        a = float(np.mean((x - x.mean()) * (fitted.ravel() - fitted.mean())) / x.var()) if x.var() > 0 else 0.0
        out = {"fit_a": a, "fit_b": float(fitted.mean() - a * x.mean())}
        pred = fitted
    return {**restoration_metrics(pred, target, data_range), **out}


def gaussian_baseline(sources, targets, data_range: float, spacing=None, fit: bool = False) -> tuple:
    """dl4mic QC's Gaussian-filter baseline: the sigma (per axis, isotropic in µm when `spacing` is given) with
    the best mean SSIM on the test pairs (`dl4mic.qc.baselines.choose_sigma`, generous: tuned on the test
    targets), and the filtered sources. Returns (filtered images, per-axis sigma, SSIM by candidate sigma)."""
    from dl4mic.qc import baselines as bl

    sigma, scores = bl.choose_sigma(sources, targets, data_range, fit=fit, spacing=spacing)
    return [bl.gaussian(s, sigma) for s in sources], sigma, scores


# --------------------------------------------------------------------------- machine

def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
    except OSError:
        pass
    return []


def mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None


def git_revision() -> str | None:
    try:
        rev = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO_DIR), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        if rev.returncode:
            return None
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict:
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "mem_gb": mem_total_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git": git_revision(),
    }


def now_stamp() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")


def write_json(path: Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else 0.5 * (xs[m - 1] + xs[m])


def md_table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    json.dump(machine_info(), sys.stdout, indent=2)
