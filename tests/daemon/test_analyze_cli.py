"""``enhancerd analyze`` end to end: contract keys, JSON lines, the table, bad files, folders, the pixel limit."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from daemon.cli import main

CONTRACT_KEYS = {"path", "width", "height", "noise_sigma", "blur_sigma", "jpeg_quality", "contrast", "quality"}


def scene(height: int = 160, width: int = 200, sigma: float = 0.0, seed: int = 0) -> np.ndarray:
    """An 8-bit photo-like image: smooth gradients, a few hard-edged blocks, optional Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([40 + 150 * xx / width, 200 - 120 * yy / height, 100 + 40 * np.sin(xx / 9)], axis=-1)
    base[40:90, 50:120] = [230, 210, 60]
    base[100:140, 130:180] = [30, 60, 160]
    return np.clip(np.round(base + rng.normal(0, sigma, base.shape)), 0, 255).astype(np.uint8)


def save(path: Path, pixels: np.ndarray, **options: object) -> Path:
    Image.fromarray(pixels).save(path, **options)
    return path


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_gives_the_contract_keys_per_input_in_order(tmp_path, capsys) -> None:
    noisy = save(tmp_path / "noisy.png", scene(sigma=15.0))
    jpeg = save(tmp_path / "photo.jpg", scene(sigma=2.0, seed=1), quality=37)
    assert main(["analyze", "--json", str(noisy), str(jpeg)]) == 0
    first, second = json_lines(capsys.readouterr().out)
    assert first.keys() >= CONTRACT_KEYS and second.keys() >= CONTRACT_KEYS
    assert (first["path"], second["path"]) == (str(noisy), str(jpeg))
    assert (first["width"], first["height"]) == (200, 160)
    assert 12.0 <= first["noise_sigma"] <= 18.0
    assert first["jpeg_quality"] is None  # a PNG that was never compressed
    assert second["jpeg_quality"] == 37  # read from the file's quantisation tables
    assert first["quality"] < 80.0
    assert all(isinstance(v, int | float) for k, v in first.items() if k not in {"path", "jpeg_quality"})


def test_width_and_height_are_after_exif_orientation(tmp_path, capsys) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(scene()).save(path, quality=92, exif=exif)
    assert main(["analyze", "--json", str(path)]) == 0
    (record,) = json_lines(capsys.readouterr().out)
    assert (record["width"], record["height"]) == (160, 200)


def test_table_lists_every_file_with_its_scores(tmp_path, capsys) -> None:
    clean = save(tmp_path / "clean.png", scene())
    jpeg = save(tmp_path / "damaged.jpg", scene(), quality=20)
    assert main(["analyze", str(clean), str(jpeg)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["path", "size"]
    assert len(lines) == 3
    assert lines[1].startswith(str(clean)) and "200×160" in lines[1]
    assert lines[2].startswith(str(jpeg)) and " 20 " in f"{lines[2]} "


def test_bad_files_get_one_stderr_line_each_and_the_rest_are_still_analysed(tmp_path, capsys) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo\n")
    empty = tmp_path / "empty.png"
    empty.touch()
    missing = tmp_path / "missing.png"
    good = save(tmp_path / "good.png", scene(sigma=5.0))
    truncated = tmp_path / "truncated.jpg"
    buffer = io.BytesIO()
    Image.fromarray(scene()).save(buffer, format="JPEG", quality=90)
    truncated.write_bytes(buffer.getvalue()[:300])

    code = main(["analyze", "--json", str(text), str(empty), str(missing), str(good), str(truncated)])
    captured = capsys.readouterr()
    assert code == 1
    records = json_lines(captured.out)
    assert [r["path"] for r in records] == [str(p) for p in (text, empty, missing, good, truncated)]
    assert [r["ok"] for r in records] == [False, False, False, True, False]
    assert records[3].keys() >= CONTRACT_KEYS
    errors = captured.err.strip().splitlines()
    assert len(errors) == 4
    for path, line in zip((text, empty, missing, truncated), errors):
        assert str(path) in line
    assert "Traceback" not in captured.err


def test_a_folder_is_expanded_to_its_images(tmp_path, capsys) -> None:
    save(tmp_path / "b.png", scene())
    save(tmp_path / "a.jpg", scene(), quality=80)
    (tmp_path / "readme.txt").write_text("ignored")
    assert main(["analyze", "--json", str(tmp_path)]) == 0
    records = json_lines(capsys.readouterr().out)
    assert [Path(r["path"]).name for r in records] == ["a.jpg", "b.png"]


def test_images_over_the_pixel_limit_are_refused_clearly(tmp_path, capsys) -> None:
    big = save(tmp_path / "big.png", scene(400, 500))
    assert main(["analyze", "--max-megapixels", "0.1", str(big)]) == 1
    err = capsys.readouterr().err
    assert str(big) in err and "Traceback" not in err


def test_an_empty_selection_is_an_error(tmp_path, capsys) -> None:
    assert main(["analyze", str(tmp_path)]) == 1
    assert "no image files" in capsys.readouterr().err
