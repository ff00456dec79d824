"""Isotropic grids from thick-slice stacks: plans, exact affines, interpolation baselines."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.data.slice_profile import block_centres, profile_matrix
from keras_seran.errors import InputDataError
from keras_seran.inference.geometry import apply_affine, fov_corners, voxel_sizes
from keras_seran.inference.throughplane import interpolate_axis, plan_isotropic


def _rotation(deg_x: float, deg_y: float, deg_z: float) -> np.ndarray:
    rx, ry, rz = np.deg2rad([deg_x, deg_y, deg_z])
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return z @ y @ x


def _fine_affine(oblique: bool, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = (_rotation(12, -7, 25) if oblique else np.diag([-1.0, 1.0, 1.0])) @ np.diag(spacing)
    a[:3, 3] = [90.0, -126.0, -72.0]
    return a


def _thick_affine(fine: np.ndarray, axis: int, thickness: int) -> np.ndarray:
    """Thick slice k is centred at fine index k T + (T - 1) / 2 along ``axis``."""
    m = np.eye(4)
    m[axis, axis] = thickness
    m[axis, 3] = (thickness - 1) / 2.0
    return fine @ m


@pytest.mark.parametrize("axis", [0, 1, 2])  # sagittal, coronal, axial stacks
@pytest.mark.parametrize("oblique", [False, True])
@pytest.mark.parametrize("thickness", [3, 4])
def test_isotropic_grid_puts_every_voxel_where_the_truth_is(axis, oblique, thickness):
    fine_shape = [40, 44, 48]
    fine_shape[axis] = 12 * thickness
    fine = _fine_affine(oblique)
    thick = _thick_affine(fine, axis, thickness)
    thick_shape = list(fine_shape)
    thick_shape[axis] = 12
    plan = plan_isotropic(thick_shape, voxel_sizes(thick))
    assert plan.axis == axis and plan.n_out == fine_shape[axis]
    assert plan.spacing_out == pytest.approx(1.0)
    out_affine = thick @ plan.vox_map()
    np.testing.assert_allclose(out_affine, fine, atol=1e-9)
    idx = np.array([[0, 0, 0], [5, 7, 9], [39, 43, 47]], float)
    idx[:, axis] = [0, 17, fine_shape[axis] - 1]
    np.testing.assert_allclose(apply_affine(out_affine, idx), apply_affine(fine, idx), atol=1e-9)


@pytest.mark.parametrize(
    "zooms,axis,n_out,spacing",
    [
        ((1.0, 1.0, 1.2), 2, 52, 1.2 * 43 / 52),  # 1 x 1 x 1.2 mm
        ((0.9, 0.9, 5.0), 2, 239, 5.0 * 43 / 239),  # 0.9 x 0.9 x 5 mm
        ((5.0, 0.9, 0.9), 0, 239, 5.0 * 43 / 239),  # a sagittal stack
    ],
)
def test_non_integer_ratios_keep_the_field_of_view(zooms, axis, n_out, spacing):
    shape = [60, 60, 60]
    shape[axis] = 43
    affine = np.eye(4)
    affine[:3, :3] = _rotation(5, 10, -20) @ np.diag(zooms)
    plan = plan_isotropic(shape, zooms)
    assert (plan.axis, plan.n_out) == (axis, n_out)
    assert plan.spacing_out == pytest.approx(spacing)
    out_shape = list(shape)
    out_shape[axis] = plan.n_out
    out_affine = affine @ plan.vox_map()
    np.testing.assert_allclose(
        fov_corners(out_affine, out_shape), fov_corners(affine, shape), atol=1e-9
    )
    assert voxel_sizes(out_affine)[axis] == pytest.approx(spacing)


def test_bad_inputs_name_the_file_and_the_problem():
    with pytest.raises(InputDataError, match="scan.nii: no thick axis"):
        plan_isotropic((64, 64, 64), (1.0, 1.0, 1.0), path="scan.nii")
    with pytest.raises(InputDataError, match="above the supported"):
        plan_isotropic((64, 64, 10), (0.5, 0.5, 6.0), path="scan.nii")
    with pytest.raises(InputDataError, match="nothing to do"):
        plan_isotropic((64, 64, 60), (1.0, 1.0, 1.02), path="scan.nii")
    with pytest.raises(InputDataError, match="at least 2"):
        plan_isotropic((64, 64, 1), (1.0, 1.0, 4.0), path="scan.nii")
    assert plan_isotropic((64, 64, 10), (0.5, 0.5, 6.0), target_spacing=1.0).n_out == 60


def test_interpolation_baselines_on_a_real_thick_stack(slab_slices):
    vol = np.moveaxis(slab_slices, 0, 2)[:, 32:224, :]  # (256, 192, 16), 1 mm
    vol = np.moveaxis(vol, 1, 2)  # thick axis last: (256, 16, 192)
    a = profile_matrix(192, block_centres(48, 4.0), 4.0)
    thick = np.tensordot(vol, a, axes=([2], [1]))  # (256, 16, 48): 1 x 1 x 4 mm
    cubic = interpolate_axis(thick, 2, 192, "cubic")
    sinc = interpolate_axis(thick, 2, 192, "sinc")
    assert cubic.shape == sinc.shape == vol.shape and cubic.dtype == np.float32
    for est in (cubic, sinc):
        err = np.abs(est - vol)[..., 8:-8].mean()
        assert err < 0.05  # close, but not the truth
        assert err > 0.005
    # zero-filling keeps the acquired spectrum: truncating it again gives the stack back
    from keras_seran.data.degrade import fourier_resample

    np.testing.assert_allclose(fourier_resample(sinc.astype(np.float64), 48, 2), thick, atol=1e-5)
    with pytest.raises(ValueError, match="interpolation"):
        interpolate_axis(thick, 2, 192, "linear")
