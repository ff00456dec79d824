"""Fixtures of the data-pipeline tests: an IXI-style folder cut from the bundled real T1 slab."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from keras_seran import samples

# Subjects of the temporary IXI folder: (subject id, site, session); each gets 4 axial slices of
# the real slab (different anatomy per subject) as T1, and subject 0 and 1 also a "T2" (inverted
# intensities inside the head: a different contrast of the same anatomy).
IXI_SUBJECTS = [
    ("IXI012", "Guys", "0828"),
    ("IXI013", "HH", "1212"),
    ("IXI014", "IOP", "1236"),
    ("IXI015", "Guys", "1300"),
]


@pytest.fixture(scope="session")
def slab_raw() -> np.ndarray:
    """The bundled real T1 slab, (256, 16, 256) float32 in the file's units (uint8 range)."""
    return np.asarray(nib.load(samples.T1_AXIAL_SLAB).dataobj, dtype=np.float32)


@pytest.fixture(scope="session")
def ixi_dir(tmp_path_factory, slab_raw) -> Path:
    """Folder of IXI-named NIfTI volumes (256, 4, 256) cut from the real slab, 4 subjects."""
    d = tmp_path_factory.mktemp("ixi")
    for i, (sid, site, ses) in enumerate(IXI_SUBJECTS):
        block = slab_raw[:, 4 * i : 4 * i + 4, :]
        nib.save(
            nib.Nifti1Image(block.astype(np.uint8), np.eye(4)), d / f"{sid}-{site}-{ses}-T1.nii.gz"
        )
        if i < 2:
            t2 = np.where(block > 10, 255.0 - block, 0.0).astype(np.uint8)
            nib.save(nib.Nifti1Image(t2, np.eye(4)), d / f"{sid}-{site}-{ses}-T2.nii.gz")
    (d / "README.txt").write_text("not an image")
    return d
