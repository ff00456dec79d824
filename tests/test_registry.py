"""The registry of bundled weights: names, files, and each model loading into the network its
card records."""

from __future__ import annotations

import pytest

from keras_seran import registry
from keras_seran.config import seran_config_from_dict
from keras_seran.errors import InputDataError, UsageError
from keras_seran.layers import SERABlock
from keras_seran.models.seran import config_from_model

BUNDLED = [(b.arch, b.scale) for b in registry.bundled() if b.degradation == "bicubic"]


@pytest.mark.parametrize(
    "name, arch, scale, degradation",
    [
        ("x2", "seran", 2, "bicubic"),
        ("seran-x3", "seran", 3, "bicubic"),
        ("EDSR-x4", "edsr", 4, "bicubic"),
        ("seran-x2-kspace", "seran", 2, "kspace"),
        ("x4-kspace", "seran", 4, "kspace"),
        ("edsr-x2-kspace", "edsr", 2, "kspace"),
        ("x3-bicubic", "seran", 3, "bicubic"),
    ],
)
def test_names_users_type(name, arch, scale, degradation):
    assert registry.parse(name) == registry.Bundled(arch, scale, "small", degradation)


@pytest.mark.parametrize(
    "name", ["x5", "rcan-x2", "x2-blur", "kspace", "runs/x2/best.keras", "seran-x2-kspace-x2", ""]
)
def test_other_names_are_no_bundled_model(name):
    assert registry.parse(name) is None


def test_files_and_names_of_a_bundled_model():
    b = registry.Bundled("seran", 2)
    assert (b.weights_path.name, b.card_path.name, b.name) == (
        "seran_small_x2.weights.h5",
        "seran_small_x2.json",
        "x2",
    )
    k = registry.Bundled("edsr", 4, degradation="kspace")
    assert (k.weights_path.name, k.card_path.name, k.name) == (
        "edsr_small_x4_kspace.weights.h5",
        "edsr_small_x4_kspace.json",
        "edsr-x4-kspace",
    )
    assert registry.parse(k.name) == k
    with pytest.raises(UsageError, match="degradation 'blur'"):
        registry.Bundled("seran", 2, degradation="blur")


def test_available_lists_what_is_installed(tmp_path, monkeypatch):
    """SERAN names whose weights exist, bicubic first (kspace weights may not be trained yet)."""
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    assert registry.available() == [] and registry.bundled() == []
    for stem in ("seran_small_x3", "seran_small_x2_kspace", "seran_small_x2", "edsr_small_x2"):
        (tmp_path / f"{stem}.weights.h5").touch()
    assert registry.available() == ["x2", "x3", "x2-kspace"]
    with pytest.raises(InputDataError, match="seran_small_x4_kspace.weights.h5: no bundled"):
        registry.load_pretrained(4, degradation="kspace")


@pytest.mark.parametrize("arch,scale", BUNDLED)
def test_bundled_card_records_the_architecture_it_loads_into(arch, scale):
    card = registry.card(scale, arch)
    assert card["arch"] == arch and card["scale"] == scale
    model = registry.load_pretrained(scale, arch)
    assert model.count_params() == card["parameters"]
    recorded = seran_config_from_dict(card["model"])
    assert recorded.scale == scale
    if arch == "seran":
        assert config_from_model(model) == recorded


def test_load_pretrained_builds_what_the_card_records(monkeypatch):
    if ("seran", 2) not in BUNDLED:
        pytest.skip("no bundled seran x2 weights")
    card = registry.card(2)
    sera = card["model"]["sera"]
    flipped = {**card["model"], "sera": {**sera, "attention_norm": not sera["attention_norm"]}}
    monkeypatch.setattr(registry.Bundled, "card", lambda self: {**card, "model": flipped})
    model = registry.load_pretrained(2)
    blocks = [l for l in model.layers if isinstance(l, SERABlock)]
    assert blocks and all(b.attention_norm == flipped["sera"]["attention_norm"] for b in blocks)
