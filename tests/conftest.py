"""Shared fixtures: real data from ../shared/data and the bundled sample."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SAMPLES = REPO / "python" / "dl4mic" / "samples" / "fmd_bpae"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long real-data runs (make test-all)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not there")
    return SHARED


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(autouse=True)
def _no_user_profile(tmp_path_factory, monkeypatch):
    """Tests never read the developer's ~/.config/dl4mic/profile.yaml (bundles take authors from it)."""
    monkeypatch.setenv("DL4MIC_PROFILE", str(tmp_path_factory.getbasetemp() / "no-profile.yaml"))
