"""Helpers shared by the benchmarks: reference virtual environments, measured
subprocesses (wall time and peak RSS of exactly that child), metrics and the
machine description written next to every result.

Only the standard library and numpy are imported at module level, so the
benchmark drivers start quickly and work from any Python that has numpy.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
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

def ensure_venv(path: Path, requirements: list[str], log=print) -> Path:
    """Create (once) a virtual environment at `path` with `requirements` installed.

    A marker file records the requirement list; when it differs (or the venv is
    missing) the environment is (re)built with pip.  Returns the venv's python.
    """
    path = Path(path)
    python = path / "bin" / "python"
    marker = path / ".dl4mic-bench-requirements"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if not python.exists():
        log(f"creating virtual environment {path} ...")
        venv.EnvBuilder(with_pip=True, clear=False).create(path)
    log(f"installing {' '.join(requirements)} into {path} (once; a few minutes) ...")
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements]
    subprocess.run(cmd, check=True)
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


# --------------------------------------------------------------------------- metrics

def psnr(pred, ref, data_range: float) -> float:
    """PSNR in dB of `pred` against `ref` (no clipping, no quantisation)."""
    import numpy as np
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(np.asarray(ref, np.float64), np.asarray(pred, np.float64),
                                         data_range=data_range))


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
