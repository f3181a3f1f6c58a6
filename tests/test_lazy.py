"""Stacks larger than the training cache (`cache_mb`) are read plane by plane as patches are drawn, and
the patches equal those of the same stack held in memory."""

from __future__ import annotations

import numpy as np
import pytest

import dl4mic
from dl4mic.data.io import read_image
from dl4mic.data.lazy import LazyStack
from dl4mic.model_folder import read_model_config
from dl4mic.networks import get_network
from dl4mic.data.sources import FolderPairs
from dl4mic.specs import load_spec

from helpers import write


@pytest.fixture
def big_pair(tmp_path):
    """A 16x384x384 pair: its prepared float32 arrays (9.4 MB) exceed a 16 MB cache only with a target."""
    rng = np.random.default_rng(0)
    low = rng.poisson(20, (16, 384, 384)).astype(np.uint16)
    high = (low.astype(np.float32) * 3 + 100).astype(np.uint16)
    write(tmp_path / "low" / "s.tif", low)
    write(tmp_path / "high" / "s.tif", high)
    return tmp_path / "low", tmp_path / "high"


def _patches(source, target, cache_mb, monkeypatch=None):
    spec, net = load_spec("care3d"), get_network("care3d")
    p = spec.resolve({"cache_mb": cache_mb, "patch_size": [8, 32, 32], "val_split": 0.0})
    data = FolderPairs(spec, source, target, params=p)
    data.split(0.0, 0, (8, 32, 32))
    normalizer = net.fit_normalization(p, data.fit_images)
    if monkeypatch is not None:  # the whole stack must never be read
        monkeypatch.setattr(FolderPairs, "load", lambda self, i: pytest.fail("the stack was read whole"))
    train, _ = data.samplers(net.prepare(normalizer, p), (8, 32, 32), np.random.default_rng(5), augment=True,
                             crop=None, cache_bytes=cache_mb * 2**20, seed=0, normalizer=normalizer,
                             prepare_for=lambda n: net.prepare(n, p))
    return train.sample(6), normalizer.as_dict()


def test_large_stack_is_read_lazily_and_gives_the_same_patches(big_pair, monkeypatch):
    lazy_stack = LazyStack.open(big_pair[0] / "s.tif")
    assert lazy_stack.shape == (16, 384, 384)
    np.testing.assert_array_equal(lazy_stack[..., 3:7, 10:20, 5:9], read_image(big_pair[0] / "s.tif")[3:7, 10:20, 5:9])
    (x_eager, y_eager), n_eager = _patches(*big_pair, cache_mb=64)
    (x_lazy, y_lazy), n_lazy = _patches(*big_pair, cache_mb=16, monkeypatch=monkeypatch)
    assert n_eager == n_lazy  # the 16 planes are the whole subsample: the fitted target range is the same
    np.testing.assert_allclose(x_lazy, x_eager, rtol=1e-6)
    np.testing.assert_allclose(y_lazy, y_eager, rtol=1e-6)
    assert x_lazy.shape == (6, 1, 8, 32, 32)


def test_training_on_a_lazily_read_stack(big_pair, tmp_path):
    model = dl4mic.train("care3d", source=big_pair[0], target=big_pair[1], model=tmp_path / "m", epochs=1,
                         params={"cache_mb": 16, "patch_size": [4, 32, 32], "steps_per_epoch": 2, "batch_size": 2,
                                 "depth": 1, "filters": 4, "val_patches": 2, "val_split": 0.25}, progress="none")
    assert read_model_config(model)["data"]["split"] == "slabs of one stack"
