"""Output dtype rules: which dtypes a super-resolved volume may be written in, and the cast.

``output_dtype`` is None (float32), ``"input"`` (the input's on-disk integer type when it holds
unscaled integers, else float32) or a NIfTI-storable numpy dtype (:data:`NIFTI_DTYPES`). The
checks run before any work: :func:`check_output_dtype` on the argument, :func:`check_integer_output`
on the input's intensities (an integer type that would saturate or leave too few grey levels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_seran.config import NIFTI_DTYPES  # noqa: F401  (public name; the one definition)
from keras_seran.errors import InputDataError, UsageError


def check_output_dtype(output_dtype: Any, what: str = "output dtype") -> Any:
    """None, "input", or the numpy dtype of a NIfTI-storable real type; else UsageError
    (checked before any work: the command line calls it, ``what="--output-dtype"``, before
    loading the model)."""
    if output_dtype is None or (isinstance(output_dtype, str) and output_dtype == "input"):
        return output_dtype
    try:
        dt = np.dtype(output_dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in NIFTI_DTYPES:
        raise UsageError(
            f"{what} {output_dtype!r}: choose 'input' or one of {', '.join(NIFTI_DTYPES)}"
        )
    return dt


#: Fewest grey levels an integer output may keep of a non-integer input (8 bits).
MIN_INTEGER_LEVELS = 256


def check_integer_output(
    output_dtype: Any, data: np.ndarray, lo: float, hi: float, path: Any = None
) -> None:
    """InputDataError when an explicitly named integer ``output_dtype`` would destroy the data:
    the input's range [lo, hi] does not fit the type (it would saturate), or the input is not
    whole numbers and spans fewer than ``MIN_INTEGER_LEVELS`` integers (rounding would leave a
    few grey levels, e.g. a scaled int16 of range 0-2.5 -> 0, 1, 2, 3)."""
    if (
        output_dtype is None
        or isinstance(output_dtype, str)
        or not np.issubdtype(output_dtype, np.integer)
    ):
        return
    info = np.iinfo(output_dtype)
    name = np.dtype(output_dtype).name
    if lo < info.min or hi > info.max:
        raise InputDataError(
            path,
            f"intensities span [{lo:g}, {hi:g}], beyond what {name} "
            f"holds ([{info.min}, {info.max}]): the output would "
            "saturate; choose float32, 'input' or a wider integer type",
        )
    if hi - lo < MIN_INTEGER_LEVELS and not np.array_equal(data, np.rint(data)):
        raise InputDataError(
            path,
            f"intensities are not whole numbers and span [{lo:g}, {hi:g}]: "
            f"rounding to {name} would keep about {int(hi - lo) + 1} grey "
            "level(s); choose float32 or 'input'",
        )


def cast_output(
    y: np.ndarray, output_dtype: Any, header: Any, lo: float, hi: float, scaled: bool = False
) -> np.ndarray:
    """The super-resolved volume in the requested dtype (see
    :meth:`keras_seran.SuperResolver.predict_volume`); ``output_dtype`` as
    :func:`check_output_dtype` returns it.

    ``scaled``: the input stored scaled integers (:attr:`keras_seran.data.io.Volume.scaled`);
    then "input" keeps float32, since rounding to the stored type would lose the scaling.
    """
    if output_dtype is None:
        return y.astype(np.float32, copy=False)
    if isinstance(output_dtype, str):  # "input": its type, in native byte order
        dt = np.dtype(header.get_data_dtype()) if header is not None else np.dtype(np.float32)
        dt = dt.newbyteorder("=")
        if not np.issubdtype(dt, np.integer) or scaled:
            dt = np.dtype(np.float32)  # scaled integers: keep the float values
    else:
        dt = output_dtype
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        r = np.rint(y)
        np.clip(r, max(info.min, np.floor(lo)), min(info.max, np.ceil(hi)), out=r)
        return r.astype(dt)
    return y.astype(dt, copy=False)  # a float type (check_output_dtype allows no other)
