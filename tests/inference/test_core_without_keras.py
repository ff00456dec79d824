"""The inference core (SuperResolver's slice/volume/tiling/normalisation/geometry/writing path)
runs a numpy network on a real NIfTI volume with Keras, TensorFlow and JAX unimportable.

What a console without TensorFlow needs (an exported artifact run by its own runtime behind the
same batch function). The subprocess loads the package's modules without running the root
``keras_seran/__init__.py`` (which registers the Keras layers, so it imports Keras), and any
import of keras, tensorflow or jax raises.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from tests.inference.conftest import blocking_preamble

PACKAGE = Path(__file__).resolve().parents[2] / "keras_seran"

#: The numpy-only modules of the inference path (not the Keras adapter ``runner``, nor the
#: commands, which load models).
CORE = [
    "keras_seran.inference",
    "keras_seran.inference.resolver",
    "keras_seran.inference.network",
    "keras_seran.inference.volume",
    "keras_seran.inference.output_dtype",
    "keras_seran.inference.tiling",
    "keras_seran.inference.geometry",
    "keras_seran.inference.ensemble",
    "keras_seran.data.io",
    "keras_seran.data.normalize",
    "keras_seran.files",
]
PREAMBLE = blocking_preamble("the numpy inference path")
SCRIPT = textwrap.dedent("""
    import importlib, json, types

    root = types.ModuleType("keras_seran")         # the package without its __init__
    root.__path__ = [{package!r}]
    root.__version__ = "test"
    sys.modules["keras_seran"] = root
    for name in {core!r}:
        importlib.import_module(name)

    import numpy as np
    from keras_seran import samples
    from keras_seran.data.degrade import bicubic_upscale
    from keras_seran.inference import SuperResolver

    def network(x):                                # (N, h, w, 1) -> (N, 2h, 2w, 1), numpy
        assert x.dtype == np.float32 and x.ndim == 4 and x.shape[-1] == 1, x.shape
        return bicubic_upscale(x[..., 0], 2)[..., None]

    sr = SuperResolver(network)
    summary = sr.predict_file(samples.T1_LOWRES, sys.argv[1], tile_size=48, overlap=8,
                              output_dtype="input")
    slice_out = sr.predict_slice(np.arange(12 * 10, dtype=np.float64).reshape(12, 10))
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    print(json.dumps({{"scale": sr.scale, "shape": summary["shape_out"],
                      "dtype": summary["dtype_out"], "slice": list(slice_out.shape),
                      "loaded": loaded}}))
""")


def test_the_numpy_inference_path_never_imports_keras_tensorflow_or_jax(tmp_path):
    out = tmp_path / "sr.nii.gz"
    script = PREAMBLE + SCRIPT.format(package=str(PACKAGE), core=CORE)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert report["scale"] == 2 and report["slice"] == [24, 20]
    # the bundled real T1 (128 x 128 x 62, 2 x 2 x 3 mm) upscaled in-plane, int16 kept
    assert report["shape"] == [256, 256, 62] and report["dtype"] == "int16"
    import nibabel as nib

    img = nib.load(out)
    np.testing.assert_allclose(img.header.get_zooms(), (1.0, 1.0, 3.0))
    assert np.asarray(img.dataobj).std() > 0


def test_the_block_in_the_subprocess_would_catch_an_import(tmp_path):
    """The check itself: the same subprocess fails when the Keras adapter is imported."""
    script = PREAMBLE + SCRIPT.format(
        package=str(PACKAGE), core=CORE + ["keras_seran.inference.runner"]
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "x.nii.gz")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "keras imported by the numpy inference path" in proc.stderr
