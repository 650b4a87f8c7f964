"""``enhancerd enhance`` end to end with the built-in model: exit codes, formats, alpha, depth, metadata, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from core.imageio import ImageData, ImageMetadata, load_image, save_image
from daemon.cli import main

ANALYZE_KEYS = {"width", "height", "noise_sigma", "blur_sigma", "jpeg_quality", "contrast", "quality"}


def noisy_scene(height: int = 72, width: int = 96, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A small photo-like float image: gradients, a bright block, sigma-12 noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([0.2 + 0.6 * xx / width, 0.7 - 0.4 * yy / height, 0.5 + 0.2 * np.sin(xx / 7)], axis=-1)
    base[height // 4 : height // 2, width // 4 : width // 2] = 0.9
    image = np.clip(base + rng.normal(0, 12 / 255, base.shape), 0, 1).astype(np.float32)
    return image[..., :1] if channels == 1 else image


def write(path: Path, pixels: np.ndarray, **fields: object) -> Path:
    fmt = {".png": "PNG", ".jpg": "JPEG", ".tif": "TIFF", ".webp": "WEBP"}[path.suffix]
    save_image(ImageData(pixels, format=fmt, **fields), path, format=fmt)  # type: ignore[arg-type]
    return path


def needs_analyser() -> None:
    """Scores come from core.analysis (landing separately); without it the images are still enhanced, unscored."""
    analysis = pytest.importorskip("core.analysis")
    if not hasattr(analysis, "analyze"):
        pytest.skip("core.analysis.analyze is not available yet")


def run_cli(*args: str) -> int:
    """fp32 on the CPU: for images this small, bf16 kernel set-up costs more than it saves."""
    return main(["enhance", "--device", "cpu", "--precision", "fp32", *args])


def test_mix_of_good_and_bad_files_processes_the_good_and_names_the_bad(tmp_path, capsys) -> None:
    good = write(tmp_path / "good.png", noisy_scene())
    other = write(tmp_path / "other.jpg", noisy_scene(seed=1))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    missing = tmp_path / "missing.png"
    out = tmp_path / "out"
    code = run_cli("-o", str(out), str(good), str(broken), str(text), str(other), str(missing))
    err = capsys.readouterr().err
    assert code == 1
    assert (out / "good.png").is_file() and (out / "other.jpg").is_file()
    failure_lines = [line for line in err.splitlines() if line.startswith("enhancerd enhance:")]
    assert len(failure_lines) == 3
    for bad in (broken, text, missing):
        assert sum(str(bad) in line for line in failure_lines) == 1
    assert "enhanced 2 of 5 images" in err and "MP/s" in err


def test_all_good_exits_zero_and_json_has_the_contract_keys(tmp_path, capsys) -> None:
    needs_analyser()
    inputs = [write(tmp_path / "a.png", noisy_scene()), write(tmp_path / "b.jpg", noisy_scene(seed=2))]
    code = run_cli("-o", str(tmp_path / "out"), "--json", *map(str, inputs))
    captured = capsys.readouterr()
    assert code == 0
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["path"] for r in records] == [str(p) for p in inputs]
    for record in records:
        assert Path(record["output"]).is_file() and record["seconds"] > 0
        assert set(record["before"]) >= ANALYZE_KEYS and set(record["after"]) >= ANALYZE_KEYS
        assert record["before"]["width"] == 96 and record["before"]["height"] == 72


def test_noise_goes_down_at_default_settings(tmp_path, capsys) -> None:
    needs_analyser()
    source = write(tmp_path / "noisy.png", noisy_scene(128, 128))
    assert main(["enhance", "-o", str(tmp_path / "out"), "--json", str(source)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["after"]["noise_sigma"] < record["before"]["noise_sigma"]


def test_ensemble_option_restores_and_unknown_sizes_are_refused(tmp_path, capsys) -> None:
    needs_analyser()
    source = write(tmp_path / "noisy.png", noisy_scene(128, 128))
    assert run_cli("-o", str(tmp_path / "one"), "--json", str(source)) == 0
    one = json.loads(capsys.readouterr().out)
    assert run_cli("-o", str(tmp_path / "two"), "--ensemble", "2", "--json", str(source)) == 0
    two = json.loads(capsys.readouterr().out)
    assert two["after"]["noise_sigma"] < two["before"]["noise_sigma"]
    assert not np.array_equal(load_image(Path(one["output"])).pixels, load_image(Path(two["output"])).pixels)
    with pytest.raises(SystemExit) as refused:
        run_cli("-o", str(tmp_path / "three"), "--ensemble", "3", str(source))
    assert refused.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_alpha_is_carried_through_untouched(tmp_path) -> None:
    alpha = np.random.default_rng(3).integers(0, 256, size=(72, 96), dtype=np.uint8)
    source = write(tmp_path / "alpha.png", noisy_scene(), alpha=alpha)
    assert run_cli("-o", str(tmp_path / "out"), str(source)) == 0
    result = load_image(tmp_path / "out" / "alpha.png")
    assert result.alpha is not None
    np.testing.assert_array_equal(result.alpha, alpha)


def test_sixteen_bit_png_stays_sixteen_bit_and_is_not_quantised(tmp_path) -> None:
    pixels = noisy_scene()
    source = write(tmp_path / "deep.png", pixels, bit_depth=16)
    out = tmp_path / "out"
    assert run_cli("-o", str(out), "--format", "png", str(source)) == 0
    result = load_image(out / "deep.png")
    assert result.bit_depth == 16
    levels = np.round(result.pixels * 65535).astype(np.int64)
    assert np.mean(levels % 257 != 0) > 0.5  # 8-bit values scaled to 16 bits would all be multiples of 257


def test_sixteen_bit_strength_zero_is_exact(tmp_path) -> None:
    pixels = (np.random.default_rng(4).integers(0, 65536, size=(40, 50, 3)) / 65535).astype(np.float32)
    source = write(tmp_path / "deep.tif", pixels, bit_depth=16)
    out = tmp_path / "out"
    assert run_cli("-o", str(out), "--strength", "0", "--format", "png", str(source)) == 0
    result = load_image(out / "deep.png")
    assert result.bit_depth == 16
    np.testing.assert_array_equal(np.round(result.pixels * 65535), np.round(pixels * 65535))


def test_grayscale_stays_grayscale(tmp_path) -> None:
    source = write(tmp_path / "gray.png", noisy_scene(channels=1))
    assert run_cli("-o", str(tmp_path / "out"), str(source)) == 0
    with Image.open(tmp_path / "out" / "gray.png") as image:
        assert image.mode in ("L", "I;16")
    assert load_image(tmp_path / "out" / "gray.png").pixels.shape == (72, 96, 1)


def test_exif_icc_dpi_kept_and_orientation_applied_then_reset(tmp_path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "enhancerd-test-camera"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    source = tmp_path / "camera.jpg"
    raw = Image.fromarray(np.round(noisy_scene() * 255).astype(np.uint8))
    raw.save(source, quality=90, exif=exif.tobytes(), icc_profile=icc, dpi=(300, 300))
    out = tmp_path / "out"
    assert run_cli("-o", str(out), str(source)) == 0
    with Image.open(out / "camera.jpg") as result:
        assert result.size == (72, 96)  # upright: the 96x72 raster rotated
        assert result.info.get("icc_profile") == icc
        assert tuple(round(v) for v in result.info.get("dpi", (0, 0))) == (300, 300)
        saved = result.getexif()
        assert saved.get(0x010F) == "enhancerd-test-camera"
        assert saved.get(0x0112, 1) == 1


def test_strength_zero_keeps_the_file_exactly(tmp_path) -> None:
    source = write(tmp_path / "keep.png", noisy_scene())
    assert run_cli("-o", str(tmp_path / "out"), "--strength", "0", str(source)) == 0
    assert (tmp_path / "out" / "keep.png").read_bytes() == source.read_bytes()


def test_format_option_changes_the_extension(tmp_path) -> None:
    source = write(tmp_path / "photo.jpg", noisy_scene())
    assert run_cli("-o", str(tmp_path / "out"), "--format", "png", str(source)) == 0
    assert (tmp_path / "out" / "photo.png").is_file()


def test_inputs_are_never_overwritten(tmp_path) -> None:
    source = write(tmp_path / "self.png", noisy_scene())
    before = source.read_bytes()
    assert run_cli("-o", str(tmp_path), str(source)) == 0
    assert source.read_bytes() == before
    assert (tmp_path / "self-enhanced.png").is_file()


def test_same_stem_inputs_get_distinct_outputs(tmp_path) -> None:
    first = write(tmp_path / "x.png", noisy_scene())
    second = write(tmp_path / "x.jpg", noisy_scene(seed=5))
    out = tmp_path / "out"
    assert run_cli("-o", str(out), "--format", "png", str(first), str(second)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x-2.png", "x.png"]


@pytest.mark.parametrize(
    "option",
    [
        ["--strength", "-1"],
        ["--strength", "1.5"],
        ["--strength", "nan"],
        ["--tile", "4"],
        ["--model", "/no/such/model.safetensors"],
    ],
)
def test_bad_options_exit_two(tmp_path, capsys, option: list[str]) -> None:
    source = write(tmp_path / "a.png", noisy_scene())
    assert run_cli("-o", str(tmp_path / "out"), *option, str(source)) == 2
    assert "enhancerd enhance:" in capsys.readouterr().err


def test_metadata_object_defaults_stay_empty(tmp_path) -> None:
    """Sanity: an image without metadata gains none."""
    source = write(tmp_path / "plain.png", noisy_scene(), metadata=ImageMetadata())
    assert run_cli("-o", str(tmp_path / "out"), str(source)) == 0
    result = load_image(tmp_path / "out" / "plain.png")
    assert result.metadata.exif is None and result.metadata.icc_profile is None


def test_the_command_line_sets_the_thread_pools_before_torch_and_numpy_load() -> None:
    """``configure_threading`` only works before torch and numpy load: parsing the command line must not import them."""
    code = (
        "import sys, daemon.cli; daemon.cli.build_parser(); "
        "assert 'torch' not in sys.modules, 'torch imported while building the parser'; "
        "assert 'numpy' not in sys.modules, 'numpy imported while building the parser'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("native", [False, True])
def test_explicit_bf16_on_a_cpu_without_it_is_warned_about(tmp_path, capsys, monkeypatch, native: bool) -> None:
    import core.device

    monkeypatch.setattr(core.device, "cpu_supports_bf16", lambda: native)
    source = write(tmp_path / "in.png", noisy_scene(height=32, width=32))
    code = main(["enhance", "--device", "cpu", "--precision", "bf16", "-o", str(tmp_path / "out"), str(source)])
    err = capsys.readouterr().err
    assert code == 0 and (tmp_path / "out" / "in.png").is_file()
    assert ("no native bf16" in err) is not native
