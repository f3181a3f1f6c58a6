"""Data sources beyond paired folders: two unpaired domains and samples simulated from parameters."""

from __future__ import annotations

import numpy as np
import pytest

from dl4mic.data.sources import FolderPairs, Simulated, Unpaired, validation_batches
from dl4mic.errors import UserError
from dl4mic.specs import load_spec

from helpers import write


def _identity(x, y):
    return np.asarray(x, np.float32), (np.asarray(y, np.float32) if y is not None else None)


def test_unpaired_domains_need_no_matching_names(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write(tmp_path / "a" / f"a{i}.tif", rng.random((40, 40)).astype(np.float32))
    for i in range(4):
        write(tmp_path / "b" / f"other_{i}.tif", (rng.random((48, 48)) + 10).astype(np.float32))
    spec = load_spec("care2d")
    with pytest.raises(UserError):  # paired folders refuse what unpaired ones accept
        FolderPairs(spec, tmp_path / "a", tmp_path / "b")
    data = Unpaired(spec, tmp_path / "a", tmp_path / "b")
    data.split(0.3, 0, (16, 16))
    train, val = data.samplers(_identity, (16, 16), np.random.default_rng(1), augment=True, crop=None,
                               cache_bytes=2**24, seed=0)
    x, y = train.sample(5)
    assert x.shape == y.shape == (5, 1, 16, 16) and x.max() < 1.5 and y.min() > 9  # each from its own domain
    assert val is not None and len(validation_batches(val, 4, 2, lambda a, b, r: (a, b), None)) == 2
    prov = data.provenance()
    assert prov["unpaired"] and prov["n_pairs"] == 3 and prov["n_target"] == 4
    assert set(prov["val_files"]).isdisjoint(prov["train_files"])
    with pytest.raises(UserError, match="second domain"):
        Unpaired(spec, tmp_path / "a", None)


def _blobs(params, rng):
    image = rng.normal(0, params["noise"], (24, 24)).astype(np.float32)
    target = np.zeros((24, 24), np.float32)
    y, x = rng.integers(4, 20, size=2)
    image[y, x] += 5
    target[y, x] = 1
    return image, target


def test_simulated_samples_are_reproducible_and_resume_exactly():
    data = Simulated(load_spec("care2d"), _blobs, {"noise": 0.1}, shape=(24, 24))
    data.split(0.1, 0, (24, 24))
    rng = np.random.default_rng(3)
    train, val = data.samplers(_identity, (24, 24), rng, augment=False, crop=None, cache_bytes=0, seed=7)
    first = train.sample(2)
    state = rng.bit_generator.state
    after = train.sample(3)
    rng.bit_generator.state = state  # what --resume restores
    again = train.sample(3)
    assert all(np.array_equal(a, b) for a, b in zip(after, again))
    assert first[0].shape == (2, 1, 24, 24) and first[1].shape == (2, 1, 24, 24)
    v1 = Simulated(load_spec("care2d"), _blobs, {"noise": 0.1}, (24, 24))
    v1.split(0.1, 0, (24, 24))
    val2 = v1.samplers(_identity, (24, 24), np.random.default_rng(99), augment=False, crop=None, cache_bytes=0,
                       seed=7)[1]
    assert np.array_equal(val.sample(2)[0], val2.sample(2)[0])  # validation does not depend on training's stream
    assert data.provenance()["source"] == "simulated"
