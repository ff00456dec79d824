"""LiteRT conversion options: fixed input size, int8 interface, and the Flex-op check."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.export import parity


def test_fixed_input_size(untrained_tiny, tmp_path):
    from keras_seran.export.litert import LiteRTRunner, export_tflite

    infos = export_tflite(untrained_tiny, tmp_path, ["float32"], input_size=(32, 40))
    info = infos["float32"]
    assert info["input"]["shape"] == [1, 32, 40, 1]
    assert info["output"]["shape"] == [1, 64, 80, 1]
    run = LiteRTRunner(tmp_path / info["file"])
    ((lr, _),) = parity.parity_pairs(2, indices=[12], lr_size=(32, 40))
    np.testing.assert_allclose(run(lr), np.asarray(untrained_tiny(lr)), atol=1e-4)
    with pytest.raises(ValueError, match="does not fit"):
        run(np.zeros((1, 16, 16, 1), np.float32))


@pytest.mark.slow
def test_full_int8_with_int8_interface(trained_tiny, tmp_path):
    from keras_seran.export.litert import LiteRTRunner, export_tflite

    cal = parity.calibration_inputs(2)[::3]
    info = export_tflite(trained_tiny, tmp_path, ["int8"], representative=cal, int8_io=True)["int8"]
    assert info["int8_io"]
    assert info["input"]["dtype"] == "int8" and info["output"]["dtype"] == "int8"
    q = info["input"]["quantization"]
    assert q["scale"] > 0 and -128 <= q["zero_point"] <= 127
    # the int8 input covers the contract's bright structures above 1, not only [0, 1]
    assert (127 - q["zero_point"]) * q["scale"] > 1.05, q
    assert "QUANTIZE" not in info["ops"]  # no float boundary: int8 end to end
    run = LiteRTRunner(tmp_path / info["file"])
    pairs = parity.parity_pairs(2)[:2]
    rep = parity.parity_report(
        lambda x: np.asarray(trained_tiny(x)), {"int8io": run}, pairs, 2, {"int8io": "int8"}
    )
    assert rep["formats"]["int8io"]["ok"], rep


def test_int8_needs_representative_data(tmp_path):
    from keras_seran.export.litert import convert_saved_model

    with pytest.raises(ValueError, match="representative"):
        convert_saved_model(tmp_path, "int8", representative=None)


def test_unknown_variant():
    from keras_seran.export.litert import check_variants

    with pytest.raises(ValueError, match="int4"):
        check_variants(["float32", "int4"])


def test_flex_ops_are_detected():
    """A model converted WITH SELECT_TF_OPS has Flex ops, and the check catches them."""
    import tensorflow as tf

    from keras_seran.errors import ExportCheckError
    from keras_seran.export.litert import assert_builtin_only, non_builtin_ops, tflite_op_names

    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4], tf.float32)])
    def f(x):
        return tf.linalg.inv(x) + 1.0

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    data = conv.convert()
    ops = tflite_op_names(data)
    assert any(o.startswith("Flex") for o in ops)
    assert non_builtin_ops(ops)
    with pytest.raises(ExportCheckError, match="Flex"):
        assert_builtin_only(data)
