"""One module per network family; each implements the protocol in `base.Network`."""

from __future__ import annotations

from ..errors import UserError
from ..specs import spec_names
from .base import Network


def get_network(name: str) -> Network:
    from .care import Care2D
    from .n2v import N2V2D
    from .stardist2d import StarDist2D
    from .unet_seg import UNet2D

    registry = {cls.name: cls for cls in (Care2D, UNet2D, N2V2D, StarDist2D)}
    if name not in registry:
        known = ", ".join(n for n in spec_names() if n in registry)
        raise UserError(f"Unknown network {name!r}; choose one of: {known} (`dl4mic networks` lists them).")
    return registry[name]()
