"""Quality control on numpy arrays: any model's output can be scored, imported ones too.

`dl4mic.qc(model, source, target, ...)` is the API twin of `dl4mic qc`."""

from .._callable import make_callable

make_callable(__name__, "dl4mic.qc.run", "run_qc")
