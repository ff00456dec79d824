"""Bundled pretrained models: the one place that turns a model's name into its weights and network.

A bundled model is an architecture, a preset, a scale and the degradation it was trained on
(:class:`Bundled`). Its files live in ``keras_seran/weights/`` (loaded with no network access)::

    seran_small_x2.weights.h5          weights; "bicubic" (the paper's BI) has no suffix
    seran_small_x2_kspace.weights.h5   other degradations: "_<degradation>"
    seran_small_x2.json                its card: the network's sizes ("model"), data, training,
                                       validation; the network is built from the card
    MODEL_CARD.md                      the model card of them all

Names as users type them (in the spirit of keras-hub's ``from_preset``): ``"x2"`` and
``"seran-x2"`` (SERAN, bicubic), ``"edsr-x4"``, ``"seran-x2-kspace"`` / ``"x2-kspace"``.
:func:`available` lists the SERAN names whose weights are installed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras

from keras_seran.config import (
    BUNDLED_DEGRADATIONS,
    DEFAULT_PRESET,
    DEFAULT_SCALE,
    PRESETS,
    SUPPORTED_SCALES,
    SERANConfig,
    check_scale,
    seran_config_from_dict,
)
from keras_seran.errors import InputDataError, UsageError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MODEL_CARD = WEIGHTS_DIR / "MODEL_CARD.md"
ARCHS = ("seran", "edsr")
#: degradations bundled weights are trained on; the first has no suffix in names and files
DEGRADATIONS = BUNDLED_DEGRADATIONS


class _WeightFiles:
    """The files of a bundled network: ``<stem>.weights.h5`` and its card ``<stem>.json``."""

    stem: str
    name: str

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.stem}.weights.h5"

    @property
    def card_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.stem}.json"

    def exists(self) -> bool:
        return self.weights_path.exists()

    def card(self) -> dict:
        """The JSON card (empty dict when there is none)."""
        return json.loads(self.card_path.read_text()) if self.card_path.exists() else {}

    def config(self) -> SERANConfig:
        """The network's sizes as the card records them (so a later change of a preset's
        defaults cannot pair the weights with another architecture); InputDataError naming the
        card when it records none."""
        recorded = self.card().get("model")
        if not recorded:
            raise InputDataError(
                self.card_path,
                f"the card of the bundled {self.name} weights "
                "records no network sizes ('model'); the "
                "installation is damaged",
            )
        return seran_config_from_dict(recorded)


@dataclass(frozen=True)
class Bundled(_WeightFiles):
    """One bundled in-plane model; UsageError for an architecture, preset, scale or degradation
    that cannot be bundled."""

    arch: str = "seran"
    scale: int = DEFAULT_SCALE
    preset: str = DEFAULT_PRESET
    degradation: str = DEGRADATIONS[0]

    def __post_init__(self) -> None:
        check_scale(self.scale)
        for what, value, allowed in (
            ("architecture", self.arch, ARCHS),
            ("preset", self.preset, tuple(PRESETS)),
            ("degradation", self.degradation, DEGRADATIONS),
        ):
            if value not in allowed:
                raise UsageError(
                    f"no bundled weights of {what} {value!r}; bundled {what}s: {', '.join(allowed)}"
                )

    @property
    def _suffix(self) -> str:
        return "" if self.degradation == DEGRADATIONS[0] else f"_{self.degradation}"

    @property
    def stem(self) -> str:
        """File stem: ``seran_small_x2``, ``seran_small_x2_kspace``."""
        return f"{self.arch}_{self.preset}_x{self.scale}{self._suffix}"

    @property
    def name(self) -> str:
        """The name to type for it: ``x2``, ``x2-kspace``, ``edsr-x4`` (SERAN needs no prefix)."""
        arch = "" if self.arch == "seran" else f"{self.arch}-"
        return f"{arch}x{self.scale}{self._suffix.replace('_', '-')}"

    def load(self) -> keras.Model:
        """The network with its bundled weights; InputDataError naming the weights file when
        they are not installed."""
        from keras_seran.models import edsr, seran

        if not self.exists():
            raise InputDataError(
                self.weights_path,
                f"no bundled {self.arch} weights for x{self.scale} (preset "
                f"{self.preset!r}, degradation {self.degradation!r}); bundled: "
                f"{', '.join(available()) or 'none'}. Train your own with "
                "`keras-seran train` and pass the .keras file instead.",
            )
        model = {"seran": seran, "edsr": edsr}[self.arch](config=self.config())
        model.load_weights(self.weights_path)
        return model


@dataclass(frozen=True)
class BundledThroughPlane(_WeightFiles):
    """The bundled through-plane SERAN (:func:`keras_seran.models.throughplane.seran_through_plane`),
    which restores reformats of thick-slice stacks interpolated along their slice axis."""

    preset: str = DEFAULT_PRESET

    @property
    def stem(self) -> str:
        """File stem: ``seran_small_throughplane``."""
        return f"seran_{self.preset}_throughplane"

    @property
    def name(self) -> str:
        return THROUGH_PLANE_NAME

    def build(self) -> keras.Model:
        """A fresh (untrained) network of the preset's sizes."""
        from keras_seran.models.throughplane import seran_through_plane

        return seran_through_plane(self.preset)

    def load(self) -> keras.Model:
        """The network, built from its card, with the bundled weights."""
        from keras_seran.models.throughplane import seran_through_plane

        if not self.exists():
            raise InputDataError(
                self.weights_path,
                f"no bundled {self.name} weights in this installation (in-plane ones: "
                f"{', '.join(available()) or 'none'}); train them with `python "
                "scripts/train_throughplane.py --out runs/pretrained` and `--export` (needs "
                "../shared/data), or pass your own network to ThroughPlaneResolver(model)",
            )
        model = seran_through_plane(config=self.config())
        model.load_weights(self.weights_path)
        return model


#: the name users type for the bundled through-plane network
THROUGH_PLANE_NAME = "throughplane"
THROUGH_PLANE = BundledThroughPlane()


def parse(name: str | Path) -> Bundled | BundledThroughPlane | None:
    """The bundled model a name means (``"x2"``, ``"seran-x2"``, ``"edsr-x4"``, ``"x2-kspace"``,
    ``"seran-x2-kspace"``, ``"throughplane"``; any case), or None when it names none."""
    if str(name).lower() in (THROUGH_PLANE_NAME, f"seran-{THROUGH_PLANE_NAME}"):
        return THROUGH_PLANE
    parts = str(name).lower().split("-")
    degradation = parts.pop() if len(parts) > 1 and parts[-1] in DEGRADATIONS else DEGRADATIONS[0]
    text = parts.pop().removeprefix("x")
    arch = "-".join(parts) or "seran"
    if arch in ARCHS and text.isdigit() and int(text) in SUPPORTED_SCALES:
        return Bundled(arch, int(text), DEFAULT_PRESET, degradation)
    return None


def bundled() -> list[Bundled]:
    """Every bundled model whose weights are installed, in file-name order."""
    models = [
        Bundled(a, s, DEFAULT_PRESET, d)
        for a in ARCHS
        for s in SUPPORTED_SCALES
        for d in DEGRADATIONS
    ]
    return sorted((m for m in models if m.exists()), key=lambda m: m.stem)


def available() -> list[str]:
    """Names of the installed SERAN models, bicubic first: e.g. ``["x2", "x3", "x4"]``."""
    return [
        m.name for d in DEGRADATIONS for m in bundled() if m.arch == "seran" and m.degradation == d
    ]


def card(
    scale: int = DEFAULT_SCALE,
    arch: str = "seran",
    preset: str = DEFAULT_PRESET,
    degradation: str = DEGRADATIONS[0],
) -> dict:
    """The JSON card of a bundled model (empty dict when it has none)."""
    return Bundled(arch, scale, preset, degradation).card()


def load_pretrained(
    scale: int = DEFAULT_SCALE,
    arch: str = "seran",
    preset: str = DEFAULT_PRESET,
    degradation: str = DEGRADATIONS[0],
) -> keras.Model:
    """Build the network from its card and load its bundled weights (see :meth:`Bundled.load`)."""
    return Bundled(arch, scale, preset, degradation).load()


def load_model(spec: str | Path) -> keras.Model:
    """A model from a ``.keras`` file or a bundled name (``x2``, ``seran-x3``, ``edsr-x4``,
    ``x2-kspace``); an existing file of that name wins. InputDataError naming the file."""
    named = parse(spec)
    if named is not None and not Path(spec).exists():
        return named.load()
    path = Path(spec)
    if not path.exists():
        raise InputDataError(
            path,
            "no such model file (expected a .keras file or a bundled "
            f"name such as x2; bundled: {available() or 'none'})",
        )
    if path.suffix == ".keras":
        try:
            return keras.saving.load_model(path, compile=False)
        except Exception as exc:  # zip/h5 errors of many kinds
            raise InputDataError(path, f"not a readable .keras model ({exc})") from exc
    raise InputDataError(path, "unsupported model file; expected a .keras file")
