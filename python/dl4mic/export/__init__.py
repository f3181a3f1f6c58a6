"""bioimage.io / DeepImageJ bundles and their import. `dl4mic.export(model, output)` twins `dl4mic export`."""

from .._callable import make_callable

make_callable(__name__, "dl4mic.export.bundle", "export")
