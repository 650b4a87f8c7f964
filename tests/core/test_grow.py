"""Growing a trained restorer: more blocks, the same output, and training picks the grown architecture up."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from core.grow import grow, main
from core.model import Restorer, RestorerConfig, count_parameters
from core.train import starting_config
from core.weights import export_weights, load_weights

TINY = RestorerConfig(widths=(8, 16, 32), encoder_blocks=(1, 1), middle_blocks=1, decoder_blocks=(1, 1))


def _trained_tiny() -> Restorer:
    """A tiny restorer whose every weight is non-zero, as after training (zero-initialised convs included)."""
    torch.manual_seed(0)
    model = Restorer(TINY)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    return model.eval()


def test_grown_network_computes_the_same_and_has_more_blocks() -> None:
    model = _trained_tiny()
    bigger = replace(TINY, encoder_blocks=(1, 2), middle_blocks=3, decoder_blocks=(2, 1))
    grown = grow(model, bigger)
    assert grown.config == bigger and len(grown.middle) == 3 and len(grown.encoders[1]) == 2
    assert count_parameters(grown) > count_parameters(model)
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(grown(x), model(x))
    # the new blocks can learn: their first convolutions are random, only the last ones start at zero
    assert grown.middle[2].conv1.weight.abs().sum() > 0 and grown.middle[2].conv2.weight.abs().sum() == 0


@pytest.mark.parametrize(
    "change",
    [{"middle_blocks": 0}, {"widths": (8, 16, 64)}, {"unshuffle": 1}, {"decoder_blocks": (1, 0)}],
)
def test_growth_refuses_anything_but_more_blocks(change: dict) -> None:
    with pytest.raises(ValueError):
        grow(_trained_tiny(), replace(TINY, **change))


def test_command_writes_loadable_weights_and_training_starts_from_them(tmp_path: Path) -> None:
    model = _trained_tiny()
    source = export_weights(model, {"version": "0.0.1", "steps": 12, "training_minutes": 1.5}, tmp_path / "old")
    assert main(["--from", str(source), "--out", str(tmp_path / "new"), "--middle-blocks", "2"]) == 0
    grown = load_weights(tmp_path / "new" / "restorer.safetensors")
    assert grown.model.config == replace(TINY, middle_blocks=2)
    assert grown.card["steps"] == 12 and grown.card["grown_from"]["version"] == "0.0.1"
    assert grown.card["parameters"] == count_parameters(grown.model)
    assert grown.card["receptive_field_px"] == grown.model.config.receptive_field
    x = torch.rand(1, 3, 32, 32)
    original = load_weights(source).model
    with torch.no_grad():
        assert torch.equal(grown.model(x), original(x))

    fresh = argparse.Namespace(run=tmp_path / "run", resume=False, init_from=None)
    assert starting_config(fresh) == RestorerConfig()
    init = argparse.Namespace(run=tmp_path / "run", resume=True, init_from=tmp_path / "new" / "restorer.safetensors")
    assert starting_config(init) == replace(TINY, middle_blocks=2), "no last.pt yet: the weights decide"
    (tmp_path / "run").mkdir()
    torch.save({"config": replace(TINY, middle_blocks=3).to_dict()}, tmp_path / "run" / "last.pt")
    assert starting_config(init) == replace(TINY, middle_blocks=3), "a resumed run keeps its own architecture"
