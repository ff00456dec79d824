"""Bundled weights: each loads into the architecture its card records, and the cards say so."""

from __future__ import annotations

import pytest

from keras_seran import pretrained
from keras_seran.config import seran_config_from_dict
from keras_seran.layers import SERABlock
from keras_seran.models.seran import config_from_model

BUNDLED = [(arch, s) for arch in ("seran", "edsr") for s in (2, 3, 4)
           if pretrained.weights_path(s, arch).exists()]


@pytest.mark.parametrize("arch,scale", BUNDLED)
def test_bundled_card_records_the_architecture_it_loads_into(arch, scale):
    card = pretrained.card(scale, arch)
    assert card["arch"] == arch and card["scale"] == scale
    model = pretrained.load_pretrained(scale, arch)
    assert model.count_params() == card["parameters"]
    recorded = seran_config_from_dict(card["model"])
    assert recorded.scale == scale
    if arch == "seran":
        assert config_from_model(model) == recorded


def test_load_pretrained_builds_what_the_card_records(monkeypatch):
    if ("seran", 2) not in BUNDLED:
        pytest.skip("no bundled seran x2 weights")
    card = pretrained.card(2)
    flipped = {**card["model"], "sera": {**card["model"]["sera"],
                                         "attention_norm": not card["model"]["sera"]["attention_norm"]}}
    monkeypatch.setattr(pretrained, "card", lambda *a, **k: {**card, "model": flipped})
    model = pretrained.load_pretrained(2)
    blocks = [l for l in model.layers if isinstance(l, SERABlock)]
    assert blocks and all(b.attention_norm == flipped["sera"]["attention_norm"] for b in blocks)
