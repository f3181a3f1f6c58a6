"""Tiled inference and writers. `dl4mic.predict(model, input, output, ...)` is the API twin of `dl4mic predict`."""

from .._callable import make_callable

make_callable(__name__, "dl4mic.predict.run", "predict")
