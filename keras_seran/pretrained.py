"""Bundled pretrained weights: a registry of what ships inside the package, loaded with no network.

Weights live in ``keras_seran/weights/`` as ``seran_small_x{scale}.weights.h5`` with a JSON card
(``seran_small_x{scale}.json``: preset, data, degradation, validation numbers) and the model card
``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras

from keras_seran.config import (SUPPORTED_SCALES, check_scale, preset_config,
                                seran_config_from_dict)
from keras_seran.errors import InputDataError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_PRESET = "small"


def weights_stem(scale: int, arch: str = "seran", preset: str = DEFAULT_PRESET,
                 degradation: str = "bicubic") -> str:
    """File stem of a bundled checkpoint: ``seran_small_x2`` (bicubic), ``seran_small_x2_kspace``."""
    return f"{arch}_{preset}_x{scale}" + ("" if degradation == "bicubic" else f"_{degradation}")


def weights_path(scale: int, arch: str = "seran", preset: str = DEFAULT_PRESET,
                 degradation: str = "bicubic") -> Path:
    return WEIGHTS_DIR / f"{weights_stem(scale, arch, preset, degradation)}.weights.h5"


def card_path(scale: int, arch: str = "seran", preset: str = DEFAULT_PRESET,
              degradation: str = "bicubic") -> Path:
    return WEIGHTS_DIR / f"{weights_stem(scale, arch, preset, degradation)}.json"


def card(scale: int, arch: str = "seran", preset: str = DEFAULT_PRESET) -> dict:
    """The JSON card of a bundled checkpoint (empty dict when it has none)."""
    p = card_path(scale, arch, preset)
    return json.loads(p.read_text()) if p.exists() else {}


def available() -> list[str]:
    """Names of the bundled checkpoints, e.g. ``["x2", "x3", "x4"]``."""
    return [f"x{s}" for s in SUPPORTED_SCALES if weights_path(s).exists()]


def parse_name(name: str) -> int | None:
    """The scale of a bundled SERAN name: ``"x2"`` / ``"seran-x2"`` -> 2; anything else -> None."""
    parsed = parse_pretrained(name)
    return parsed[1] if parsed is not None and parsed[0] == "seran" else None


def parse_pretrained(name: str) -> tuple[str, int] | None:
    """``"x2"`` / ``"seran-x2"`` -> ("seran", 2); ``"edsr-x4"`` -> ("edsr", 4); else None."""
    arch, _, text = str(name).lower().rpartition("-")
    arch = arch or "seran"
    text = text.removeprefix("x")
    if arch in ("seran", "edsr") and text.isdigit() and int(text) in SUPPORTED_SCALES:
        return arch, int(text)
    return None


def load_pretrained(scale: int = 2, arch: str = "seran", preset: str = DEFAULT_PRESET) -> keras.Model:
    """Build the network and load its bundled weights for ``scale``.

    The network is built from the ``model`` sizes recorded in the weights' card (so a later
    change of a preset's defaults cannot silently pair the weights with another architecture);
    cards without them use the preset.
    """
    from keras_seran.models import edsr, seran

    check_scale(scale)
    path = weights_path(scale, arch, preset)
    if not path.exists():
        raise InputDataError(path, f"no bundled {arch} weights for x{scale} (preset {preset!r}); "
                                   f"bundled: {available() or 'none'}. Train your own with "
                                   "`keras-seran train` and pass the .keras file instead.")
    builder = {"seran": seran, "edsr": edsr}[arch]
    recorded = card(scale, arch, preset).get("model")   # the sizes the weights were trained with
    config = seran_config_from_dict(recorded) if recorded else preset_config(preset, scale)
    model = builder(config=config)
    model.load_weights(path)
    return model


def load_model(spec: str | Path) -> keras.Model:
    """A model from a ``.keras`` file or a bundled name (``x2``, ``seran-x3``, ``edsr-x4``)."""
    parsed = parse_pretrained(str(spec))
    if parsed is not None and not Path(spec).exists():
        return load_pretrained(parsed[1], arch=parsed[0])
    path = Path(spec)
    if not path.exists():
        raise InputDataError(path, "no such model file (expected a .keras file or a bundled "
                                   f"name such as x2; bundled: {available() or 'none'})")
    if path.suffix == ".keras":
        try:
            return keras.saving.load_model(path, compile=False)
        except Exception as exc:  # zip/h5 errors of many kinds
            raise InputDataError(path, f"not a readable .keras model ({exc})") from exc
    raise InputDataError(path, "unsupported model file; expected a .keras file")
