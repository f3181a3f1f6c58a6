"""YAML that both YAML 1.2 (ruyaml, bioimageio) and YAML 1.1 readers (PyYAML, SnakeYAML in Fiji) read alike."""

from __future__ import annotations

import re

import yaml


class _Dumper(yaml.SafeDumper):
    """PyYAML writes 1e-06, which YAML 1.1 readers (PyYAML, SnakeYAML in Fiji) take for a string."""


def _float(dumper, value: float):
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exp = text.split("e")
        text = f"{mantissa}.0e{exp}"
    elif value != value or value in (float("inf"), float("-inf")):
        return dumper.represent_float(value)
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


_Dumper.add_representer(float, _float)


class Yaml12Loader(yaml.SafeLoader):
    """Reads YAML 1.2 floats such as 1e-06 (ruyaml writes them) as floats, not strings."""


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml(text):
    return yaml.load(text, Loader=Yaml12Loader)


def dump_yaml(data) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
