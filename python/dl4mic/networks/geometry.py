"""Per-axis geometry of a network: patch shape, size multiples, tiling halo and output scale.

One object replaces the integer patch size, `multiple()` and `halo()` of the 2D-only spine, so that the
sampler and the tiler work alike on YX images and ZYX stacks, on outputs subsampled by a grid (StarDist:
scale 1/grid) and on up-sampled outputs (Deep-STORM: scale 8)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..errors import UserError


@dataclass(frozen=True)
class Geometry:
    axes: str                          # spatial axes the network sees: "YX" or "ZYX"
    patch: tuple[int, ...]             # training patch, per spatial axis
    multiple: tuple[int, ...]          # input sizes must be multiples of these (down-sampling)
    halo: tuple[int, ...]              # context each side that tiled prediction adds (input pixels)
    out_scale: tuple[Fraction, ...]    # output pixels per input pixel, per axis
    spacing: tuple[float, ...] | None = None  # voxel size in µm, per spatial axis

    @property
    def ndim(self) -> int:
        return len(self.axes)

    def as_dict(self) -> dict:
        """For model.yaml and reports: plain lists (scales as strings such as '1/2')."""
        return {"axes": self.axes, "patch": list(self.patch), "multiple": list(self.multiple),
                "halo": list(self.halo), "out_scale": [str(s) for s in self.out_scale],
                "spacing": list(self.spacing) if self.spacing else None}


def per_axis(value, ndim: int, name: str = "patch_size") -> tuple[int, ...]:
    """One integer for every axis (64) or exactly one per axis ([16, 64, 64])."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim:
        raise UserError(f"{name}={','.join(map(str, values))} gives {len(values)} sizes for {ndim} axes; give one "
                        f"number or {ndim} (e.g. {name}={','.join(['16'] + ['64'] * (ndim - 1))}).")
    return tuple(int(v) for v in values)


def round_down(sizes: tuple[int, ...], multiple: tuple[int, ...]) -> tuple[int, ...]:
    """Each size rounded down to its axis's multiple (at least one multiple)."""
    return tuple(max(m, s - s % m) for s, m in zip(sizes, multiple))


def check_patch(geometry: Geometry, network: str) -> None:
    """Refuse a patch that the network's down-sampling cannot take, with the nearest sizes that work."""
    bad = [(a, p, m) for a, p, m in zip(geometry.axes, geometry.patch, geometry.multiple) if p % m]
    if bad:
        fixed = ",".join(str(s) for s in round_down(geometry.patch, geometry.multiple))
        axes = ", ".join(f"{a} {p} (a multiple of {m})" for a, p, m in bad)
        raise UserError(f"patch_size does not fit {network}'s down-sampling along {axes}; use e.g. "
                        f"--patch-size {fixed}.")
