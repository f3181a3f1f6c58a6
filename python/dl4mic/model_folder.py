"""The model folder: its paths, model.yaml (read and written only here), and the environment recorded for
reproducibility. Training writes it; predict, QC, export and reports read it."""

from __future__ import annotations

import os
import platform
import shutil
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .data.io import atomic_path
from .errors import UserError
from .locks import LOCK_NAME

MODEL_FILE = "model.yaml"
MODEL_FORMAT = 1  # model.yaml's `format`: raise it when a change makes older dl4mic misread new folders
OWNED = ("model.yaml", "weights", "checkpoint.pt", "training", "qc", "export")


def write_torch(obj, path: Path, save=None) -> None:
    """Serialise `obj` in memory with `save` (torch.save; torch.jit.save for TorchScript), then write it
    atomically: a full disk is then an OSError (ENOSPC) the CLI explains, where torch's own writer aborts
    the process or reports 'unexpected pos'."""
    import io

    import torch

    buffer = io.BytesIO()
    (save or torch.save)(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


class ModelFolder:
    """Paths inside one model folder (see docs/model-folder.md)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / MODEL_FILE
        self.weights = self.root / "weights"
        self.best = self.weights / "best.pt"
        self.last = self.weights / "last.pt"
        self.checkpoint = self.root / "checkpoint.pt"
        self.training = self.root / "training"
        self.log = self.training / "log.csv"
        self.report = self.training / "report.pdf"

    def read(self) -> dict:
        """model.yaml, checked enough that a damaged or tampered file is one sentence, never a traceback
        (safe YAML: tags such as !!python/object are refused, not run)."""
        if not self.config.is_file():
            raise UserError(f"{self.root} is not a dl4mic model folder (no model.yaml); give the folder `dl4mic train` wrote.")
        damaged = (f"{self.config} is damaged or was edited by hand ({{why}}); restore it from a backup or "
                   f"train the model again.")
        try:
            with open(self.config, encoding="utf-8") as fh:
                config = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            why = "it holds a YAML tag dl4mic does not load" if isinstance(exc, yaml.constructor.ConstructorError) \
                else f"not valid YAML: {str(exc).splitlines()[0]}"
            raise UserError(damaged.format(why=why)) from None
        except UnicodeDecodeError:
            raise UserError(damaged.format(why="it is not UTF-8 text")) from None
        if not isinstance(config, dict) or not isinstance(config.get("parameters"), dict):
            raise UserError(damaged.format(why="it is not a mapping with the network and its parameters"))
        version = config.get("format", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise UserError(damaged.format(why=f"its format {version!r} is not a dl4mic format number"))
        if version > MODEL_FORMAT:
            raise UserError(f"{self.config} was written by a newer dl4mic (model format {version}; this dl4mic "
                            f"reads format {MODEL_FORMAT} and older); update dl4mic (pip install -U dl4mic).")
        from .networks import get_network

        try:
            get_network(config.get("network"))
        except UserError:
            raise UserError(f"{self.config} names the network {config.get('network')!r}, which this dl4mic does "
                            f"not have (`dl4mic networks` lists its networks); update dl4mic or restore the "
                            f"file.") from None
        return config

    def remove_partials(self) -> list[Path]:
        """Delete the hidden partial files (`.NAME.xxxx.part.EXT`, see `atomic_path`) that a killed run left
        in the folder; the complete files beside them are untouched. Call it while holding the folder's lock."""
        removed = []
        for folder in (self.root, self.weights, self.training):
            if folder.is_dir():
                for path in folder.glob(".*.part*"):
                    if path.is_file():
                        path.unlink()
                        removed.append(path)
        return removed

    def load_weights(self, path: Path, map_location="cpu") -> dict:
        """A state dict or checkpoint from this folder, with `weights_only=True` (no pickled code runs); a
        missing, empty, truncated or foreign file is one sentence."""
        import torch

        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path} is missing; the model folder is incomplete (train it again or use --resume).")
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # the weights-only unpickler raises many types for damaged bytes (fuzzing found IndexError)
            raise UserError(f"{path} cannot be loaded as dl4mic weights ({type(exc).__name__}: it is empty, "
                            f"truncated, damaged or not a PyTorch state dict); restore it from a backup or train "
                            f"the model again.") from None

    def write(self, config: dict) -> None:
        write_yaml(self.config, config)

    def prepare_new(self, overwrite: bool, inputs: list[Path]) -> None:
        """Refuse to write into input folders or over an existing model unless `overwrite`; then clear it."""
        root = self.root.resolve()
        for folder in inputs:
            if folder is None:
                continue
            folder = Path(folder).resolve()
            folder = folder if folder.is_dir() else folder.parent
            if root == folder or folder in root.parents:
                raise UserError(f"The model folder {self.root} is inside the input folder {folder}; "
                                f"choose a model folder outside your data.")
        if root.exists() and any(p.name != LOCK_NAME for p in root.iterdir()):  # our own lock does not count
            if not overwrite:
                raise UserError(f"{self.root} already exists; choose a new --model folder, add --overwrite to replace "
                                f"it, or --resume to continue its training.")
            if not self.config.is_file():
                raise UserError(f"{self.root} is not empty and is not a dl4mic model folder; choose a new --model folder.")
            for name in OWNED:
                p = root / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        root.mkdir(parents=True, exist_ok=True)


def read_model_config(model_dir) -> dict:
    """model.yaml of a model folder: the one place it is read (safe YAML)."""
    return ModelFolder(model_dir).read()


def write_yaml(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh, sort_keys=False, allow_unicode=True)


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def environment(device) -> dict:
    """Versions and hardware, so a model's provenance can be reproduced."""
    import numpy
    import torch

    from . import __version__

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    env = {
        "dl4mic": __version__, "python": platform.python_version(), "torch": str(torch.__version__),
        "numpy": str(numpy.__version__), "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(), "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
