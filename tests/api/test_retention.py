"""Retention with an injected clock: limits to the second, dry run equals real run, crash and rerun, trash, safety."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

import storage
from daemon.retention import RetentionBusy, trash
from daemon.retention import runner as runner_module

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)

POLICY = {
    "inbox.0.retention.outputs_days": "3",
    "inbox.0.retention.originals_days": "10",
    "inbox.0.retention.failed_days": "1",
}


def _paths(image) -> dict[str, Path | None]:
    return {
        "output": Path(image.output_path) if image.output_path else None,
        "original": Path(image.original_location) if image.original_location else None,
    }


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _counter(metrics, kind: str) -> float:
    return metrics.registry.get_sample_value("enhancerd_retention_deleted_total", {"kind": kind}) or 0.0


@pytest.mark.parametrize("settings_overrides", [POLICY])
def test_each_limit_to_the_second(context, library, clock, metrics) -> None:
    now = clock.now
    out_old = library.add(finished_at=now - 3 * DAY - SECOND)
    out_edge = library.add(finished_at=now - 3 * DAY)
    out_new = library.add(finished_at=now - 3 * DAY + SECOND)
    orig_old = library.add(finished_at=now - 10 * DAY - SECOND, original="keep")
    orig_edge = library.add(finished_at=now - 10 * DAY, original="keep")
    failed_old = library.add(state="failed", finished_at=now - DAY - SECOND)
    failed_new = library.add(state="failed", finished_at=now - DAY + SECOND)
    before = {
        i: _paths(library.image(i)) for i in (out_old, out_edge, out_new, orig_old, orig_edge, failed_old, failed_new)
    }

    report = context.retention.run(dry_run=False)

    planned = {(item.image_id, item.kind.value) for item in report.items}
    assert planned == {
        (out_old, "outputs"),
        (orig_old, "outputs"),  # older than 3 days too
        (orig_edge, "outputs"),
        (orig_old, "originals"),
        (failed_old, "failed"),
    }
    assert not before[out_old]["output"].exists() and before[out_old]["original"].exists()
    assert before[out_edge]["output"].exists() and before[out_new]["output"].exists()
    assert not before[orig_old]["original"].exists()
    assert before[orig_edge]["original"].exists()
    assert not before[failed_old]["original"].exists()
    assert not Path(f"{before[failed_old]['original']}.error.txt").exists()
    assert before[failed_new]["original"].exists() and Path(f"{before[failed_new]['original']}.error.txt").exists()

    assert library.image(out_old).state.value == "deleted"
    assert library.image(out_edge).state.value == "done"
    assert library.image(orig_old).original_deleted_at == now
    assert library.image(failed_old).state.value == "deleted"
    assert library.image(failed_old).original_deleted_at == now
    assert library.image(out_old).score(storage.ScorePhase.BEFORE) is not None  # rows and scores are kept
    assert (
        _counter(metrics, "outputs") == 3 and _counter(metrics, "originals") == 1 and _counter(metrics, "failed") == 1
    )


@pytest.mark.parametrize("settings_overrides", [POLICY])
def test_deleted_files_go_to_the_trash_with_their_paths(context, library, clock, settings) -> None:
    image_id = library.add("sub/dir/a.png", finished_at=clock.now - 30 * DAY)
    failed_id = library.add("b.png", state="failed", finished_at=clock.now - 30 * DAY)
    report = context.retention.run(dry_run=False)
    folder = Path(report.trash_folder)
    assert folder.parent == settings.trash_dir and folder.name == "20250601T120000Z"
    assert _files(folder) == [
        "inbox/failed/b.png",
        "inbox/failed/b.png.error.txt",
        "inbox/originals/sub/dir/a.png",
        "inbox/outputs/sub/dir/a.png",
    ]
    assert library.image(image_id).state.value == "deleted"
    assert library.image(failed_id).state.value == "deleted"


@pytest.mark.parametrize("settings_overrides", [POLICY])
def test_dry_run_equals_real_run_and_a_second_run_does_nothing(context, library, clock, sessions) -> None:
    for age in (1, 4, 11, 20):
        library.add(finished_at=clock.now - age * DAY)
        library.add(state="failed", finished_at=clock.now - age * DAY)
    library.add(original="keep", finished_at=clock.now - 15 * DAY)
    dry = context.retention.run(dry_run=True)
    assert dry.items and all(Path(item.path).exists() for item in dry.items)
    again = context.retention.run(dry_run=True)
    assert [i.as_dict() for i in again.items] == [i.as_dict() for i in dry.items]
    real = context.retention.run(dry_run=False)
    assert [i.as_dict() for i in real.items] == [i.as_dict() for i in dry.items]
    assert real.totals() == dry.totals()
    assert not any(Path(item.path).exists() for item in real.items)
    with sessions() as session:
        events = len(storage.list_events(session, limit=1000).items)
    second = context.retention.run(dry_run=False)
    assert second.items == () and context.retention.run(dry_run=True).items == ()
    with sessions() as session:
        assert len(storage.list_events(session, limit=1000).items) == events + 1  # only the run's own summary


@pytest.mark.parametrize("settings_overrides", [POLICY])
def test_a_run_killed_midway_finishes_cleanly_next_time(context, library, clock, monkeypatch, settings) -> None:
    ids = [library.add(finished_at=clock.now - 5 * DAY) for _ in range(5)]
    real_move = trash.move_to_trash
    calls = {"n": 0}

    class Killed(BaseException):
        """Like SIGKILL: nothing after this point runs."""

    def dying_move(path: Path, target: Path) -> Path | None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise Killed
        return real_move(path, target)

    monkeypatch.setattr(runner_module, "CHUNK", 2)
    monkeypatch.setattr(trash, "move_to_trash", dying_move)
    with pytest.raises(Killed):
        context.retention.run(dry_run=False)
    # chunk 1 (two images) committed; chunk 2 moved one file, then died before its commit
    states = [library.image(i).state.value for i in ids]
    assert states == ["deleted", "deleted", "done", "done", "done"]
    assert not Path(library.image(ids[2]).output_path).exists()

    monkeypatch.setattr(trash, "move_to_trash", real_move)
    clock.advance(minutes=5)
    report = context.retention.run(dry_run=False)
    assert [(item.image_id, item.missing) for item in report.items] == [
        (ids[2], True),
        (ids[3], False),
        (ids[4], False),
    ]
    assert [library.image(i).state.value for i in ids] == ["deleted"] * 5
    assert _files(settings.inboxes[0].output) == []
    trashed = _files(settings.trash_dir)
    assert len([name for name in trashed if "/outputs/" in name]) == 5  # every output is in the trash, none lost
    assert context.retention.run(dry_run=True).items == ()


@pytest.mark.parametrize("settings_overrides", [{"inbox.0.retention.outputs_days": "1"}])
def test_a_row_that_changes_during_the_run_is_left_alone(context, library, clock, sessions, monkeypatch) -> None:
    image_id = library.add(finished_at=clock.now - 5 * DAY)
    output = Path(library.image(image_id).output_path)
    real_move = trash.move_to_trash

    def move_then_reprocess(path: Path, target: Path) -> Path | None:
        moved = real_move(path, target)
        with sessions.begin() as session:  # an admin asks for a reprocess at this very moment
            storage.requeue_for_reprocess(session, image_id, {"strength": 0.3}, now=clock.now)
        return moved

    monkeypatch.setattr(trash, "move_to_trash", move_then_reprocess)
    report = context.retention.run(dry_run=False)
    assert report.items == ()
    assert [s.image_id for s in report.skipped] == [image_id] and "changed" in report.skipped[0].reason
    assert output.exists()  # put back
    assert library.image(image_id).state.value == "queued"


@pytest.mark.parametrize("settings_overrides", [POLICY])
def test_files_outside_the_configured_folders_are_never_touched(context, library, clock, sessions, tmp_path) -> None:
    import sqlalchemy as sa

    outside = tmp_path / "elsewhere" / "precious.png"
    outside.parent.mkdir()
    outside.write_bytes(b"precious")
    image_id = library.add(finished_at=clock.now - 30 * DAY)
    link_id = library.add(finished_at=clock.now - 30 * DAY)
    link = Path(library.image(link_id).output_path)
    link.unlink()
    os.symlink(outside, link)
    dotdot = library.add(finished_at=clock.now - 30 * DAY)
    sneaky = str(Path(library.image(dotdot).output_path).parent / ".." / "elsewhere" / "precious.png")
    with sessions.begin() as session:
        session.execute(sa.update(storage.Image).where(storage.Image.id == image_id).values(output_path=str(outside)))
        session.execute(sa.update(storage.Image).where(storage.Image.id == dotdot).values(output_path=sneaky))
    report = context.retention.run(dry_run=False)
    skipped = {(s.image_id, s.kind.value) for s in report.skipped}
    assert {(image_id, "outputs"), (link_id, "outputs")} <= skipped
    assert outside.read_bytes() == b"precious" and link.is_symlink()
    assert library.image(image_id).state.value == "done"


@pytest.mark.parametrize("settings_overrides", [{"inbox.0.retention.originals_days": "1"}])
def test_a_new_file_under_an_old_name_is_not_deleted(context, library, clock) -> None:
    image_id = library.add("same.png", original="keep", finished_at=clock.now - 5 * DAY)
    source = Path(library.image(image_id).source_path)
    source.write_bytes(b"a different photo dropped later under the same name")
    report = context.retention.run(dry_run=False)
    assert [(i.image_id, i.missing) for i in report.items] == [(image_id, True)]
    assert source.read_bytes().startswith(b"a different photo")
    assert library.image(image_id).original_deleted_at is not None


@pytest.mark.parametrize("settings_overrides", [{}])
def test_disk_ceiling_removes_oldest_outputs_first(context, library, clock) -> None:
    ids = [library.add(finished_at=clock.now - (10 - i) * DAY) for i in range(5)]
    sizes = [library.image(i).output_size for i in ids]
    ceiling_bytes = sum(sizes[2:])  # the three newest fit exactly
    context.retention.set_policies({"inboxes": {"inbox": {"max_disk_gb": ceiling_bytes / 1024**3}}})
    report = context.retention.run(dry_run=False)
    assert [(i.image_id, i.reason) for i in report.items] == [(ids[0], "disk"), (ids[1], "disk")]
    assert [library.image(i).state.value for i in ids] == ["deleted", "deleted", "done", "done", "done"]
    assert context.retention.run(dry_run=True).items == ()


@pytest.mark.parametrize("settings_overrides", [{**POLICY, "retention.trash_days": "0"}])
def test_trash_days_zero_deletes_at_once(context, library, clock, settings) -> None:
    library.add(finished_at=clock.now - 30 * DAY)
    report = context.retention.run(dry_run=False)
    assert report.items and report.trash_folder is None
    assert not settings.trash_dir.exists() or _files(settings.trash_dir) == []
    assert all(not Path(item.path).exists() for item in report.items)


@pytest.mark.parametrize("settings_overrides", [POLICY])
def test_the_trash_is_purged_after_trash_days(context, library, clock, settings) -> None:
    library.add(finished_at=clock.now - 30 * DAY)
    folder = Path(context.retention.run(dry_run=False).trash_folder)
    foreign = settings.trash_dir / "not-ours"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    clock.advance(days=7)
    assert context.retention.purge_trash().folders == () and folder.exists()
    clock.advance(seconds=1)
    assert context.retention.run(dry_run=True).purge.folders == (str(folder),)
    assert folder.exists()  # a dry run purges nothing either
    purged = context.retention.purge_trash()
    assert purged.folders == (str(folder),) and purged.files == 2  # the output and the original
    assert not folder.exists() and (foreign / "keep.txt").exists()


@pytest.mark.parametrize("settings_overrides", [POLICY])
def test_a_run_writes_events(context, library, clock, api) -> None:
    image_id = library.add(finished_at=clock.now - 30 * DAY)
    context.retention.run(dry_run=False)
    kinds = [e["kind"] for e in api.get(f"/api/v1/events?image_id={image_id}").json["items"]]
    assert kinds[-2:] == ["deleted", "original_deleted"]
    run = api.get("/api/v1/events?kind=retention").json["items"]
    assert len(run) == 1 and run[0]["detail"]["totals"]["outputs"]["files"] == 1


@pytest.mark.parametrize("settings_overrides", [POLICY])
def test_reprocess_after_retention_took_the_original_is_409(api, context, library, clock) -> None:
    image_id = library.add(finished_at=clock.now - 30 * DAY)
    context.retention.run(dry_run=False)
    response = api.post(f"/api/v1/images/{image_id}/reprocess", {"strength": 0.5})
    assert response.status_code == 409 and "gone" in response.json["detail"]


# --- through the API --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [POLICY])
def test_run_through_the_api(api, library, clock) -> None:
    image_id = library.add(finished_at=clock.now - 30 * DAY)
    dry = api.post("/api/v1/retention/run", {"dry_run": True})
    assert dry.status_code == 200 and dry.json["dry_run"] is True
    assert dry.json["totals"]["outputs"] == {"files": 1, "bytes": library.image(image_id).output_size}
    real = api.post("/api/v1/retention/run", {"dry_run": False})
    assert real.status_code == 200
    assert real.json["items"] == dry.json["items"]
    assert api.get(f"/api/v1/images/{image_id}").json["state"] == "deleted"


def test_run_needs_an_explicit_dry_run(api) -> None:
    for body in (None, {}, {"dry_run": "no"}, {"dry_run": 0}, {"dry_run": False, "force": True}):
        assert api.post("/api/v1/retention/run", body).status_code == 422, body


def test_a_second_run_at_the_same_time_is_409(api, context) -> None:
    with context.retention._lock:
        response = api.post("/api/v1/retention/run", {"dry_run": False})
        assert response.status_code == 409 and "in progress" in response.json["detail"]
        assert api.post("/api/v1/retention/run", {"dry_run": True}).status_code == 200
    with pytest.raises(RetentionBusy), context.retention._lock:
        context.retention.run(dry_run=False)


@pytest.mark.parametrize("settings_overrides", [POLICY])
def test_policies_get_and_put(api, library, clock) -> None:
    body = api.get("/api/v1/retention").json
    assert body["schedule"] == "0 3 * * *" and body["trash_days"] == 7.0
    inbox = body["inboxes"]["inbox"]
    assert inbox["configured"]["outputs_days"] == 3.0 and inbox["override"] == {}
    response = api.put("/api/v1/retention", {"inboxes": {"inbox": {"outputs_days": 40, "failed_days": None}}})
    assert response.status_code == 200
    inbox = response.json["inboxes"]["inbox"]
    assert inbox["effective"] == {
        "outputs_days": 40.0,
        "originals_days": 10.0,
        "failed_days": None,
        "max_disk_gb": None,
    }
    assert inbox["override"] == {"outputs_days": 40.0, "failed_days": None}
    old = library.add(finished_at=clock.now - 30 * DAY)
    assert api.post("/api/v1/retention/run", {"dry_run": True}).json["totals"]["outputs"]["files"] == 0
    assert api.put("/api/v1/retention", {}).status_code == 200  # replaces: back to the config
    items = api.post("/api/v1/retention/run", {"dry_run": True}).json["items"]
    assert (old, "outputs") in {(i["image_id"], i["kind"]) for i in items}


@pytest.mark.parametrize(
    "body",
    [
        [],
        "forever",
        {"inbox": {}},
        {"inboxes": []},
        {"inboxes": {"nope": {"outputs_days": 1}}},
        {"inboxes": {"inbox": []}},
        {"inboxes": {"inbox": {"output_days": 1}}},
        {"inboxes": {"inbox": {"outputs_days": -1}}},
        {"inboxes": {"inbox": {"outputs_days": "30"}}},
        {"inboxes": {"inbox": {"outputs_days": True}}},
        {"inboxes": {"inbox": {"outputs_days": 10**9}}},
        {"inboxes": {"inbox": {"max_disk_gb": 0}}},
    ],
)
def test_bad_policies_are_422(api, body) -> None:
    response = api.put("/api/v1/retention", body)
    assert response.status_code == 422, (body, response.json)
    assert response.json["detail"].startswith("invalid retention policy")
    assert api.get("/api/v1/retention").json["inboxes"]["inbox"]["override"] == {}


def test_policy_body_must_be_json(api, auth) -> None:
    assert (
        api.client.put("/api/v1/retention", data=b"{", content_type="application/json", headers=auth).status_code == 400
    )
    assert api.client.put("/api/v1/retention", data=b"{}", content_type="text/plain", headers=auth).status_code == 415
    assert api.client.put("/api/v1/retention", headers=auth).status_code == 422
