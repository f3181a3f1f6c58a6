"""Where training samples come from. The loop asks a data source for a training and a validation sampler
(`sample(batch) -> (source patches, target patches or None)`), the images to fit a normalisation on, and
its provenance for model.yaml; it never knows whether the data are paired files, two unpaired domains or
simulated from parameters.

* `FolderPairs`: files of two folders paired by name (ZeroCostDL4Mic's convention), or one folder alone
  (self-supervised); validation is a file split, or a strip/slab of a single image.
* `Unpaired`: two domains (CycleGAN); every patch of one is drawn independently of the other.
* `Simulated`: samples made from parameters by a function the network supplies, seeded per sample, so
  validation is fixed and `--resume` continues the same stream (Deep-STORM)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from .check import DataSummary, check_data
from .io import channels_first, read_image
from .patches import ImageCache, PatchSampler, fixed_batches, region_view, split_regions


class DataSource:
    """The interface (see the module docstring); `summary` holds what `check` found."""

    summary: DataSummary

    def split(self, val_split: float, seed: int, patch: tuple) -> None:
        raise NotImplementedError

    def fit_images(self, role: str) -> list[np.ndarray]:
        """Raw training images of a role ("source" | "target"), channels first, to fit a normalisation on."""
        raise NotImplementedError

    def samplers(self, prepare: Callable, patch: tuple, rng: np.random.Generator, *, augment: bool, crop,
                 cache_bytes: int, seed: int, normalizer=None, prepare_for: Callable | None = None):
        """(training sampler, validation sampler or None); samplers have `sample(batch)`. `prepare_for(normaliser)`
        rebuilds `prepare` around another normaliser (stacks read lazily pin their own range)."""
        raise NotImplementedError

    def val_images(self) -> Callable[[], list[tuple]] | None:
        """Whole prepared validation regions as (input, target) pairs, for settings that patches would bias."""
        return None

    def provenance(self) -> dict:
        raise NotImplementedError

    def inputs(self) -> list:
        """Folders the model folder must not be written into."""
        return []


def validation_batches(sampler, n: int, batch: int, make_batch: Callable, rng: np.random.Generator) -> list:
    """`n` validation patches drawn once (then transformed by the strategy): the same every epoch."""
    return [make_batch(x, y, rng) for x, y in fixed_batches(sampler, n, batch)] if sampler is not None else []


class FolderPairs(DataSource):
    """Paired folders (or one folder for networks without targets), checked file by file."""

    def __init__(self, spec, source, target=None, axes: str | None = None, params: dict | None = None):
        self.summary = check_data(spec, source, target, axes, params)
        self.axes_override = axes
        self.cache_bytes = int((params or {}).get("cache_mb", 2048)) * 2**20
        self.train_regions: list = []
        self.val_regions: list = []
        self._cache: ImageCache | None = None
        self._lazy_prepare = None

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        src, tgt = self.summary.pairs[i]
        x = channels_first(read_image(src), self.summary.axes)
        return x, (channels_first(read_image(tgt), self.summary.axes) if tgt is not None else None)

    def lazy_stacks(self, i: int) -> tuple | None:
        """(source, target) lazy readers when pair `i` is a ZYX stack whose prepared arrays would not fit the
        cache (`cache_mb`), else None (read whole)."""
        from .lazy import LazyStack

        if self.summary.axes != "ZYX":
            return None
        src, tgt = self.summary.pairs[i]
        s = LazyStack.open(src)
        if s is None or int(np.prod(s.shape)) * 4 * (2 if tgt is not None else 1) <= self.cache_bytes:
            return None
        t = LazyStack.open(tgt) if tgt is not None else None
        return None if (tgt is not None and t is None) else (s, t)

    def _load_or_lazy(self, i: int):
        stacks = self.lazy_stacks(i) if self._lazy_prepare is not None else None
        if stacks is None:
            return None
        from .lazy import LazyPair, PinnedNormalizer

        normalizer, prepare_for = self._lazy_prepare
        source, target = stacks
        pinned = PinnedNormalizer(normalizer, normalizer.source_range(source.subsample()))
        return LazyPair(source, target, prepare_for(pinned)).views()

    def split(self, val_split, seed, patch):
        self.patch = tuple(patch)
        self.train_regions, self.val_regions = split_regions(self.summary.pairs, self.summary.shapes, val_split,
                                                             seed, self.patch)

    def fit_images(self, role):
        """Training images of a role; large stacks by a subsample of their planes."""
        k = 0 if role == "source" else 1
        out = []
        for i in sorted({r.index for r in self.train_regions}):
            stacks = self.lazy_stacks(i)
            out.append(stacks[k].subsample() if stacks is not None else self.load(i)[k])
        return out

    def samplers(self, prepare, patch, rng, *, augment, crop, cache_bytes, seed, normalizer=None,
                 prepare_for=None):
        self.cache_bytes = cache_bytes
        self._lazy_prepare = (normalizer, prepare_for) if normalizer is not None and prepare_for else None
        self._cache = ImageCache(self.load, prepare, cache_bytes, lazy=self._load_or_lazy)
        shapes = self.summary.shapes
        train = PatchSampler(self.train_regions, shapes, self._cache, patch, rng, augment=augment, crop=crop)
        val = PatchSampler(self.val_regions, shapes, self._cache, patch, np.random.default_rng(seed + 1)) \
            if self.val_regions else None
        return train, val

    def val_images(self):
        if not self.val_regions:
            return None
        nd = len(self.patch)
        return lambda: [tuple(region_view(a, r, nd) for a in self._cache.get(r.index)) for r in self.val_regions]

    def provenance(self):
        s, pairs = self.summary, self.summary.pairs
        nd = len(self.patch)
        return {
            "source": str(Path(s.source).resolve()),
            "target": str(Path(s.target).resolve()) if s.target else None,
            "n_pairs": len(pairs), "source_dtype": s.source_dtype,
            "train_files": sorted({pairs[r.index][0].name for r in self.train_regions}),
            "val_files": sorted({pairs[r.index][0].name for r in self.val_regions}),
            "split": "files" if len(pairs) > 1 else ("slabs of one stack" if nd == 3 else "strips of one image"),
            "shapes": [list(sh) for sh in s.shapes],
            **({"axes_override": self.axes_override} if self.axes_override else {}),
        }

    def inputs(self):
        return [self.summary.source, self.summary.target]


class _Zip:
    """Draws a source patch from one sampler and a target patch from another, independently."""

    def __init__(self, a: PatchSampler, b: PatchSampler):
        self.a, self.b = a, b

    def sample(self, batch):
        return self.a.sample(batch)[0], self.b.sample(batch)[0]


class Unpaired(DataSource):
    """Two domains: the images of `source` and of `target` are not paired by name (CycleGAN)."""

    def __init__(self, spec, source, target, axes: str | None = None, params: dict | None = None):
        if target is None:
            raise UserError(f"{spec.name} learns to translate between two domains; give --target, the folder of "
                            f"images of the second domain (file names need not match those in {source}).")
        self.a = FolderPairs(_domain(spec, "source"), source, None, axes, params)
        self.b = FolderPairs(_domain(spec, "target"), target, None, axes, params)
        if self.a.summary.axes != self.b.summary.axes:
            raise UserError(f"The images in {source} have axes {self.a.summary.axes} but those in {target} have "
                            f"{self.b.summary.axes}; give both domains in the same layout or set --axes.")
        self.summary = self.a.summary
        self.summary.target = Path(target)
        self.summary.target_dtype = self.b.summary.source_dtype

    def split(self, val_split, seed, patch):
        self.a.split(val_split, seed, patch)
        self.b.split(val_split, seed + 1, patch)

    def fit_images(self, role):
        return (self.a if role == "source" else self.b).fit_images("source")

    def samplers(self, prepare, patch, rng, *, augment, crop, cache_bytes, seed, normalizer=None,
                 prepare_for=None):
        def alone(x, _):  # each domain is prepared as an input on its own (e.g. its own percentiles)
            return prepare(x, None)

        ta, va = self.a.samplers(alone, patch, rng, augment=augment, crop=crop, cache_bytes=cache_bytes // 2,
                                 seed=seed)
        tb, vb = self.b.samplers(alone, patch, rng, augment=augment, crop=crop, cache_bytes=cache_bytes // 2,
                                 seed=seed + 10)
        return _Zip(ta, tb), (_Zip(va, vb) if va is not None and vb is not None else None)

    def provenance(self):
        a, b = self.a.provenance(), self.b.provenance()
        return {"source": a["source"], "target": b["source"], "unpaired": True,
                "n_pairs": a["n_pairs"], "n_target": b["n_pairs"], "source_dtype": a["source_dtype"],
                "train_files": a["train_files"], "val_files": a["val_files"],
                "target_train_files": b["train_files"], "target_val_files": b["val_files"],
                "split": a["split"], "shapes": a["shapes"], "target_shapes": b["shapes"]}

    def inputs(self):
        return [self.a.summary.source, self.b.summary.source]


def _domain(spec, role: str):
    """The spec seen from one domain: that role's images checked alone, as a source without targets."""
    from dataclasses import replace

    return replace(spec, data={"source": spec.data.get(role, spec.data["source"])})


class _SimulatedSampler:
    """Sample k of the stream is `simulate(params, default_rng([seed, k]))`: reproducible and resumable
    (the position is drawn from the loop's generator, whose state the checkpoint keeps)."""

    def __init__(self, simulate: Callable, params: dict, prepare: Callable, rng: np.random.Generator, seed: int):
        self.simulate, self.params, self.prepare, self.rng, self.seed = simulate, params, prepare, rng, seed

    def sample(self, batch):
        """(B, 1, *spatial) inputs; targets stacked likewise when they are arrays, else a list (points)."""
        xs, ys = [], []
        for _ in range(batch):
            k = int(self.rng.integers(2 ** 62))
            x, y = self.prepare(*self.simulate(self.params, np.random.default_rng([self.seed, k])))
            xs.append(x)
            ys.append(y)
        y = np.stack(ys)[:, None] if isinstance(ys[0], np.ndarray) else (ys if ys[0] is not None else None)
        return np.stack(xs)[:, None], y


class Simulated(DataSource):
    """Training data made from parameters: `simulate(params, rng) -> (source, target)` (one sample, spatial
    axes only, no channel axis); no files are read. Validation patches come from a separate seed."""

    def __init__(self, spec, simulate: Callable, params: dict, shape: tuple, axes: str = "YX"):
        self.simulate, self.params = simulate, params
        self.summary = DataSummary(spec.name, Path("<simulated>"), None, pairs=[], shapes=[tuple(shape)],
                                   source_dtype="float32", axes=axes)

    def split(self, val_split, seed, patch):
        self.val = val_split > 0

    def fit_images(self, role):
        rng = np.random.default_rng(12345)
        return [self.simulate(self.params, rng)[0 if role == "source" else 1] for _ in range(4)]

    def samplers(self, prepare, patch, rng, *, augment, crop, cache_bytes, seed, normalizer=None,
                 prepare_for=None):
        train = _SimulatedSampler(self.simulate, self.params, prepare, rng, seed)
        val = _SimulatedSampler(self.simulate, self.params, prepare, np.random.default_rng(seed + 1), seed + 1) \
            if self.val else None
        return train, val

    def provenance(self):
        return {"source": "simulated", "target": None, "n_pairs": 0, "source_dtype": "float32",
                "simulation": {k: v for k, v in self.params.items()}, "shapes": [list(self.summary.shapes[0])],
                "train_files": [], "val_files": [], "split": "independent simulated samples"}
