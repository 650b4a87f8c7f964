"""`enhancerd status`, `reprocess` and `retention` against a live API on a free port."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest

from daemon.api.server import ApiServer
from daemon.cli import main

TOKEN_ARGS = ["--token", "s3cret-test-token"]


@pytest.fixture
def live(app) -> Iterator[str]:
    server = ApiServer(app, "127.0.0.1", 0, threads=2)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def test_status_readable_and_json(live, library, capsys) -> None:
    library.add(state="queued")
    assert main(["status", "--url", live, *TOKEN_ARGS]) == 0
    out = capsys.readouterr().out
    assert "queued 1" in out and "test-1 on cpu (fp32)" in out and "watcher:" in out
    assert main(["status", "--url", live, *TOKEN_ARGS, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["queue"]["counts"]["queued"] == 1


def test_status_errors_are_one_line_and_non_zero(live, capsys, monkeypatch) -> None:
    monkeypatch.delenv("ENHANCERD_API_TOKEN", raising=False)
    assert main(["status", "--url", live, "--token", "wrong"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "enhancerd status: 401 the bearer token is not valid"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    assert main(["status", "--url", f"http://127.0.0.1:{free_port}", *TOKEN_ARGS, "--timeout", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("enhancerd status: cannot reach") and "\n" not in err


def test_token_from_the_environment(live, capsys, monkeypatch) -> None:
    monkeypatch.setenv("ENHANCERD_API_TOKEN", "s3cret-test-token")
    assert main(["status", "--url", live]) == 0


def test_reprocess_ids(live, library, capsys) -> None:
    good = library.add()
    gone = library.add(original="delete")
    assert main(["reprocess", str(good), "--strength", "0.4", "--url", live, *TOKEN_ARGS]) == 0
    assert capsys.readouterr().out.strip() == f"image {good}: queued (strength 0.4)"
    assert main(["reprocess", str(gone), "999", "--url", live, *TOKEN_ARGS]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"enhancerd reprocess: image {gone}: 409 the original of image {gone} is gone")
    assert err[1] == "enhancerd reprocess: image 999: 404 image 999 does not exist"
    assert main(["reprocess", str(good), "--strength", "7", "--url", live, *TOKEN_ARGS]) == 1
    assert "422" in capsys.readouterr().err
    other = library.add()
    assert main(["reprocess", str(other), "--ensemble", "8", "--url", live, *TOKEN_ARGS]) == 0
    line = capsys.readouterr().out.strip()  # PostgreSQL's jsonb keeps its own key order
    assert line.startswith(f"image {other}: queued (") and {"strength 1.0", "ensemble 8"} == set(
        line.split("(", 1)[1].rstrip(")").split(", ")
    )


@pytest.mark.parametrize("settings_overrides", [{"inbox.0.retention.outputs_days": "1"}])
def test_retention_run_and_show(live, library, clock, capsys) -> None:
    old = library.add(finished_at=clock.now - timedelta(days=5))
    assert main(["retention", "run", "--dry-run", "--url", live, *TOKEN_ARGS]) == 0
    out = capsys.readouterr().out
    assert f"would delete outputs   image {old:>7}" in out and "would delete: outputs 1 file(s)" in out
    assert library.image(old).state.value == "done"
    assert main(["retention", "run", "--url", live, *TOKEN_ARGS, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] is False and [i["image_id"] for i in report["items"]] == [old]
    assert library.image(old).state.value == "deleted"
    assert main(["retention", "show", "--url", live, *TOKEN_ARGS]) == 0
    assert "inbox: outputs_days 1, originals_days forever" in capsys.readouterr().out


def test_url_and_token_from_a_config_file(app, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("ENHANCERD_API_TOKEN", raising=False)
    server = ApiServer(app, "127.0.0.1", 0, threads=1)
    server.start()
    try:
        config = tmp_path / "cli.toml"
        config.write_text(f'[api]\nhost = "127.0.0.1"\nport = {server.port}\ntoken = "s3cret-test-token"\n')
        assert main(["status", "--config", str(config), "--json"]) == 0
        assert "queue" in json.loads(capsys.readouterr().out)
        (tmp_path / "bad.toml").write_text("[api]\nport = 'x'\n")
        assert main(["status", "--config", str(tmp_path / "bad.toml")]) == 1
        assert capsys.readouterr().err.startswith("enhancerd status: invalid configuration")
    finally:
        server.stop()
