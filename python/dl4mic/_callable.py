"""Let a subpackage double as its command's API twin: `dl4mic.qc(...)` beside `dl4mic.qc.metrics`."""

from __future__ import annotations

import importlib
import sys
import types


def make_callable(package: str, module: str, function: str) -> None:
    """Calling the package `package` calls `module.function` (imported on first call, keeping imports light)."""

    class CallablePackage(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(importlib.import_module(module), function)(*args, **kwargs)

    sys.modules[package].__class__ = CallablePackage
