"""One module per network family; each implements the protocol in `base.Network`."""

from __future__ import annotations

from ..errors import UserError
from ..specs import spec_names
from .base import Network

_EXTRA: dict[str, type[Network]] = {}


def _registry() -> dict[str, type[Network]]:
    from .care import Care2D, Care3D
    from .n2v import N2V2D, N2V3D
    from .stardist2d import StarDist2D
    from .stardist3d import StarDist3D
    from .unet_seg import UNet2D, UNet3D

    classes = (Care2D, Care3D, UNet2D, UNet3D, N2V2D, N2V3D, StarDist2D, StarDist3D)
    return {**{cls.name: cls for cls in classes}, **_EXTRA}


def register(cls: type[Network]) -> type[Network]:
    """Add a network class (its spec comes from `cls.spec`); for plug-ins and tests of the protocol."""
    _EXTRA[cls.name] = cls
    return cls


def get_network(name: str) -> Network:
    registry = _registry()
    if name not in registry:
        known = ", ".join(n for n in spec_names() if n in registry)
        raise UserError(f"Unknown network {name!r}; choose one of: {known} (`dl4mic networks` lists them).")
    return registry[name]()
