"""Shared fixtures: real MR images (bundled sample always; ../shared/data when present)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.register_assert_rewrite("tests.layer_checks")  # detailed failures from the shared helper

from tests.real_mr import bundled_slab_slices  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the repository (or $KERAS_SERAN_SHARED_DATA), if present."""
    env = os.environ.get("KERAS_SERAN_SHARED_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (set KERAS_SERAN_SHARED_DATA to run this test)")
    return path


@pytest.fixture(scope="session")
def slab_slices() -> np.ndarray:
    """The bundled real T1 slab as (16, 256, 256) float32 axial slices scaled to [0, 1]
    (read-only)."""
    return bundled_slab_slices()


@pytest.fixture(scope="session")
def mr_slice(slab_slices) -> np.ndarray:
    """One real T1 axial slice, (256, 256) float32 in [0, 1]."""
    return slab_slices[8]
