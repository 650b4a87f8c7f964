"""Loading models safely: our Restorer files, training checkpoints, refusals, and spandrel's architectures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.engine import Engine, EngineSettings
from core.model import Restorer, RestorerConfig
from core.model_loader import ModelLoadError, load_model
from core.weights import export_weights

SMALL = RestorerConfig(widths=(8, 16), encoder_blocks=(1,), middle_blocks=1, decoder_blocks=(1,))


def random_restorer() -> Restorer:
    torch.manual_seed(0)
    model = Restorer(SMALL).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.05)
    return model


def test_exported_restorer_loads_with_its_card(tmp_path) -> None:
    model = random_restorer()
    path = export_weights(model, {"name": "mine", "version": "7"}, tmp_path, stem="mine")
    descriptor = load_model(path)
    assert (descriptor.architecture, descriptor.name, descriptor.version) == ("Restorer", "mine", "7")
    assert descriptor.tile_multiple == SMALL.tile_multiple and descriptor.scale == 1
    loaded = descriptor.model.state_dict()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded[name], value.half().float())


def test_restorer_safetensors_without_card_uses_its_metadata(tmp_path) -> None:
    path = export_weights(random_restorer(), {"version": "3"}, tmp_path, stem="bare")
    path.with_suffix(".json").unlink()
    descriptor = load_model(path)
    assert descriptor.model.config == SMALL and descriptor.version == "3"


def test_training_checkpoint_loads_its_ema_weights(tmp_path) -> None:
    model = random_restorer()
    path = tmp_path / "best.pt"
    torch.save({"ema": model.state_dict(), "step": 10, "config": SMALL.to_dict()}, path)
    descriptor = load_model(path)
    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    with torch.inference_mode():
        want = model(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    got = Engine(descriptor, EngineSettings(device="cpu", precision="fp32")).restore(image)
    assert np.abs(got - want).max() <= 1e-5


class Payload:
    """Anything that is not plain tensors and containers: weights_only loading must refuse it."""


def test_pickles_with_code_are_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "payload": Payload()}, path)
    with pytest.raises(ModelLoadError, match="cannot be read safely"):
        load_model(path)


def test_unknown_files_are_refused_clearly(tmp_path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"\0" * 16)
    with pytest.raises(ModelLoadError, match="unsupported model file type"):
        load_model(tmp_path / "model.onnx")
    with pytest.raises(ModelLoadError, match="no such model file"):
        load_model(tmp_path / "missing.safetensors")


def test_foreign_architecture_without_spandrel_or_unknown_keys_is_an_error(tmp_path) -> None:
    path = tmp_path / "mystery.safetensors"
    save_file({"something.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(ModelLoadError):
        load_model(path)


def _spandrel():
    try:
        import spandrel
    except Exception as error:  # not installed, or its torchvision does not match this torch
        pytest.skip(f"spandrel unavailable: {error}")
    return spandrel


def test_spandrel_real_esrgan_upscales_through_the_engine(tmp_path) -> None:
    _spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    network = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2).eval()
    path = tmp_path / "tiny-esrgan.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    descriptor = load_model(path)
    assert descriptor.architecture == "ESRGAN" and descriptor.scale == 2
    image = np.random.default_rng(0).random((40, 36, 3), dtype=np.float32)
    with torch.inference_mode():
        want = network(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    got = Engine(descriptor, EngineSettings(device="cpu", precision="fp32")).restore(image)
    assert got.shape == (80, 72, 3)
    assert np.abs(got - want).max() <= 1e-4
