"""Fixtures of the inference tests: small models (no bundled weights needed) and real MR files."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from keras_seran import samples

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """``$KERAS_SERAN_SHARED_DATA`` or ``../shared/data`` next to the repository root."""
    env = os.environ.get("KERAS_SERAN_SHARED_DATA")
    for d in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if d.is_dir():
            return d
    return None


@pytest.fixture(scope="session")
def shared_t1_256() -> Path:
    d = shared_data_dir()
    p = d / "t1_head_256iso.nii.gz" if d else None
    if p is None or not p.exists():
        pytest.skip(
            "shared data t1_head_256iso.nii.gz not found (set KERAS_SERAN_SHARED_DATA "
            "or put it in ../shared/data)"
        )
    return p


@pytest.fixture(scope="session")
def tiny_seran():
    """SERAN x2, tiny preset, random weights (seeded), with the SERA residual scale fixed at 1 so
    the global attention really contributes (a learnable s starts at 0, i.e. no attention)."""
    import keras

    from keras_seran.models import seran

    keras.utils.set_random_seed(1234)
    return seran(2, "tiny", sera={"residual_scale": 1.0})


@pytest.fixture(scope="session")
def bicubic_model():
    """Bicubic upsampling x2 as a Keras model: a local, deterministic, meaningful SR 'network'."""
    from keras_seran.models import bicubic

    return bicubic(2)


@pytest.fixture(scope="session")
def tiny_keras_file(tmp_path_factory, tiny_seran) -> Path:
    """The tiny SERAN saved as a .keras file (for --model on the command line)."""
    p = tmp_path_factory.mktemp("models") / "tiny_x2.keras"
    tiny_seran.save(p)
    return p


@pytest.fixture(scope="session")
def slab():
    """The bundled real T1 slab as a nibabel image (256x16x256 uint8, 1 mm, slices along axis 1)."""
    import nibabel as nib

    return nib.load(str(samples.T1_AXIAL_SLAB))


@pytest.fixture(scope="session")
def lowres():
    """The bundled real low-res T1 (128x128x62 int16, 2x2x3 mm; thick axis 2)."""
    import nibabel as nib

    return nib.load(str(samples.T1_LOWRES))


@pytest.fixture(scope="session")
def small_lowres_file(tmp_path_factory, lowres) -> Path:
    """A real-data NIfTI small enough for fast CLI runs: 10 slices of the bundled low-res T1."""
    p = tmp_path_factory.mktemp("inputs") / "t1_lowres_10.nii.gz"
    lowres.slicer[:, :, 26:36].to_filename(str(p))
    return p


def list_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


def assert_no_output(folder: Path, keep: set[str] = frozenset()) -> None:
    """Nothing (no result, no temporary file) in ``folder`` except the names in ``keep``."""
    left = [f for f in list_files(folder) if f not in keep]
    assert not left, f"unexpected files left behind: {left}"


def mad_over_range(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(a, np.float64) - b)) / (ref.max() - ref.min()))


#: What the numpy/runtime inference paths must never import.
FORBIDDEN = ("keras", "tensorflow", "jax")


def blocking_preamble(what: str) -> str:
    """Python source that makes any later import of :data:`FORBIDDEN` raise ImportError("<name>
    imported by <what>"), and binds ``FORBIDDEN`` (for subprocess scripts that prove a path
    never loads them; check ``sys.modules`` at the end too)."""
    return textwrap.dedent(f"""
        import importlib.abc, sys

        FORBIDDEN = {FORBIDDEN!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in FORBIDDEN:
                    raise ImportError(f"{{name}} imported by {what}")

        sys.meta_path.insert(0, Block())
    """)
