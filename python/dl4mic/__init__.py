"""dl4mic: deep learning for microscopists who work in Fiji.

The functions here are the Python twins of the `dl4mic` commands; the CLI and
the Fiji scripts call them. Heavy modules (torch) are imported lazily.
"""

__version__ = "0.1.0"

from .errors import UserError  # noqa: E402


def networks():
    """Names, titles and tasks of the available networks."""
    from .specs import list_specs

    return [{"name": s.name, "title": s.title, "task": s.task} for s in list_specs()]


def check_data(network, source, target=None, **kwargs):
    from .data.check import check_data as _check

    return _check(network, source, target, **kwargs)


def train(network, source, model, target=None, **kwargs):
    from .training.api import train as _train

    return _train(network, source=source, target=target, model=model, **kwargs)


def demo(workdir=None, **kwargs):
    from .demo import run_demo

    return run_demo(workdir, **kwargs)


from . import export, predict, qc  # noqa: E402,F401  callable subpackages: dl4mic.qc(...), ...
