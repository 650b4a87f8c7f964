"""Latency of the REST API on a large database while the worker is busy, in markdown tables.

    python -m bench.api [--images 100000] [--clients 50] [--seconds 20] [--think-ms 1000] [--database-url URL]

1. Builds a database of ``--images`` images (bulk inserts: rows, before/after scores, their events; 90 % done, the
   rest failed, duplicate, deleted or queued, spread over 90 days), then ``ANALYZE``.
2. Serves the real app with :class:`daemon.api.server.ApiServer` (waitress) on loopback.
3. (a) ``GET /api/v1/images`` with filters, one request at a time (target: < 100 ms each).
4. (b) ``--clients`` concurrent clients (threads in separate processes, each with a keep-alive connection, each a
   dashboard that polls ``/api/v1/status`` and ``/api/v1/images?state=done&limit=50`` in turn with ``--think-ms``
   between requests, randomised +-50 %) while a thread plays a busy worker: it claims batches of 8, burns CPU
   (numpy, which releases the GIL like torch does), records scores and commits, and keeps re-queueing done images.
   Reports p50/p95/p99 per endpoint (target: p99 < 100 ms). A stress test: the thread commits several times
   more images per second than the daemon can enhance, so the database work competes far more than in practice.
5. (c), (d) The same clients against the real daemon (``python -m daemon run`` with default settings, a subprocess)
   on a copy of the database while its worker enhances a burst of files: (c) photo-sized (about 1 MP), (d) 64-96 px
   thumbnails, its highest commit rate (target: p99 < 100 ms). Skipped with ``--no-daemon`` or a non-SQLite
   ``--database-url``.
Pause other CPU-heavy work while this runs: it measures the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import logging
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update as sa_update

STATUS = "/api/v1/status"
IMAGES = "/api/v1/images?state=done&limit=50"
TOKEN = "bench-token"
TARGET_MS = 100.0

BURSTS: tuple[tuple[int, tuple[int, int]], ...] = ((80, (900, 1200)), (800, (64, 96)))
"""(files, side range) the real daemon enhances while the clients run: (c) photo-sized files, about 1 MP, what a
scanner or a photo library drops; (d) thumbnails, the daemon's highest commit rate and the most GIL-bound work."""

FILTERS: tuple[tuple[str, str], ...] = (
    ("state + score range", "/api/v1/images?state=done&min_noise_sigma=15&limit=50"),
    ("score upper bound", "/api/v1/images?max_quality=20&limit=50"),
    ("two scores, rare match", "/api/v1/images?min_noise_sigma=19.9&max_quality=2&limit=50"),
    ("inbox + state", "/api/v1/images?inbox=inbox&state=failed&limit=50"),
    ("date range", "/api/v1/images?created_from=2025-03-01&created_to=2025-03-08&limit=50"),
    ("newest deleted", "/api/v1/images?state=deleted&order=desc&limit=50"),
    ("after-scores, 200 rows", "/api/v1/images?phase=after&min_quality=50&limit=200"),
    ("no filter, 1000 rows", "/api/v1/images?limit=1000"),
)


# --- database -----------------------------------------------------------------------------------------------------


def build_database(url: str, count: int, seed: int = 7) -> None:
    """``count`` images with scores and events, inserted in bulk."""
    import sqlalchemy as sa

    import storage
    from storage import Event, EventKind, Image, ImageState, Score, ScorePhase

    engine = storage.create_engine(url)
    storage.migrate(engine)
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    states = [ImageState.DONE] * 90 + [ImageState.FAILED] * 4 + [ImageState.DUPLICATE] * 2
    states += [ImageState.DELETED] * 2 + [ImageState.QUEUED] * 2
    chunk = 10_000
    for offset in range(0, count, chunk):
        images, scores, events = [], [], []
        for n in range(offset, min(count, offset + chunk)):
            image_id = n + 1
            state = rng.choice(states)
            created = start + timedelta(seconds=n * 90 * 86400 / count)
            finished = None if state is ImageState.QUEUED else created + timedelta(seconds=rng.uniform(1, 30))
            images.append(
                {
                    "id": image_id,
                    "content_hash": f"{image_id:064x}",
                    "inbox": "inbox",
                    "source_path": f"/srv/photos/inbox/{n % 100}/img{n}.jpg",
                    "relative_path": f"{n % 100}/img{n}.jpg",
                    "source_size": rng.randint(200_000, 9_000_000),
                    "source_mtime_ns": 1_700_000_000_000_000_000 + n,
                    "output_path": f"/srv/photos/outbox/{n % 100}/img{n}.jpg" if finished else None,
                    "output_size": rng.randint(200_000, 9_000_000) if finished else None,
                    "archive_path": f"/srv/photos/archive/{n % 100}/img{n}.jpg" if finished else None,
                    "format": "jpeg",
                    "width": 4000,
                    "height": 3000,
                    "state": state,
                    "attempts": 1,
                    "error": "cannot decode" if state is ImageState.FAILED else None,
                    "next_attempt_at": created,
                    "model_version": "bench-1",
                    "parameters": {"strength": 1.0},
                    "parameters_key": "0" * 64,
                    "timings": {"decode": 0.05, "model": 0.8},
                    "device": "cuda",
                    "created_at": created,
                    "updated_at": finished or created,
                    "started_at": finished,
                    "finished_at": finished,
                }
            )
            events.append({"image_id": image_id, "kind": EventKind.DISCOVERED, "at": created, "detail": None})
            events.append({"image_id": image_id, "kind": EventKind.QUEUED, "at": created, "detail": None})
            if finished is not None:
                kind = EventKind.FAILED if state is ImageState.FAILED else EventKind.DONE
                events.append({"image_id": image_id, "kind": kind, "at": finished, "detail": None})
                for phase, gain in ((ScorePhase.BEFORE, 0.0), (ScorePhase.AFTER, 1.0)):
                    scores.append(_scores(rng, image_id, phase, gain))
        with engine.begin() as connection:
            connection.execute(sa.insert(Image), images)
            if scores:
                connection.execute(sa.insert(Score), scores)
            connection.execute(sa.insert(Event), events)
    storage.analyze(engine)
    engine.dispose()


def _scores(rng: random.Random, image_id: int, phase: Any, gain: float) -> dict[str, Any]:
    noise = rng.uniform(0, 20) * (0.2 if gain else 1.0)
    return {
        "image_id": image_id,
        "phase": phase,
        "width": 4000,
        "height": 3000,
        "noise_sigma": noise,
        "blur_sigma": rng.uniform(0, 3),
        "jpeg_quality": rng.randint(10, 100),
        "contrast": rng.uniform(0, 1),
        "quality": min(100.0, rng.uniform(0, 100) + 20 * gain),
        "megapixels": 12.0,
        "blockiness": rng.uniform(0, 1),
        "exposure": rng.uniform(-1, 1),
        "clipped_shadows": rng.uniform(0, 0.05),
        "clipped_highlights": rng.uniform(0, 0.05),
        "extra": None,
    }


# --- the busy worker ----------------------------------------------------------------------------------------------


class BusyWorker:
    """Claims, "processes" (numpy CPU burn) and commits batches until stopped, like the daemon's worker (at the
    daemon's worker priority: ``nice`` as in ``[worker] nice``)."""

    def __init__(self, sessions: Any, burn_ms: float = 40.0, wait_ms: float = 0.0, nice: int = 0) -> None:
        self._sessions = sessions
        self.nice = nice
        self._burn_ms = burn_ms
        self._wait_ms = wait_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-worker")
        self.batches = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import numpy as np

        import storage
        from daemon.worker.priority import lower_thread_priority

        lower_thread_priority(self.nice)
        a = np.random.default_rng(0).random((384, 384), dtype=np.float32)
        rng = random.Random(1)
        while not self._stop.is_set():
            now = storage.utcnow()
            with self._sessions.begin() as session:
                batch = storage.claim_batch(session, "bench", 8, 300, now)
                if not batch:  # keep the queue fed: send some done images back
                    for image_id in storage.image_ids(
                        session, storage.ImageFilter(states=[storage.ImageState.DONE]), limit=64
                    ):
                        storage.requeue_for_reprocess(session, image_id, {"strength": 0.9}, now=now)
                    continue
            until = time.perf_counter() + self._burn_ms / 1000
            while time.perf_counter() < until:
                a = np.tanh(a @ a) if self._stop.is_set() is False else a
            self._stop.wait(self._wait_ms / 1000)  # the batch on the GPU: the CPU is free meanwhile
            now = storage.utcnow()
            with self._sessions.begin() as session:
                for image in batch:
                    values = _scores(rng, image.id, "before", 0.0)
                    values = {k: v for k, v in values.items() if k not in ("image_id", "phase")}
                    storage.mark_done(
                        session,
                        image.id,
                        output_path=f"/srv/out/{image.id}.jpg",
                        output_size=1000,
                        now=now,
                        owner="bench",
                        before=values,
                        after=values,
                        device="cuda",
                    )
            self.batches += 1


# --- clients ------------------------------------------------------------------------------------------------------


def client_process(port: int, threads: int, seconds: float, think_ms: float, seed: int, out: Any) -> None:
    """``threads`` polling clients; sends {path: [latency ms, ...]} back through ``out``."""
    results: dict[str, list[float]] = {STATUS: [], IMAGES: []}
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        paths = (STATUS, IMAGES) if index % 2 == 0 else (IMAGES, STATUS)
        time.sleep(rng.uniform(0, think_ms / 1000))  # spread the first requests out
        n = 0
        while time.monotonic() < deadline:
            path = paths[n % 2]
            n += 1
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(repr(exc))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if status == 200:
                    results[path].append(elapsed)
                else:
                    errors.append(f"{path}: HTTP {status}")
            time.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)
        connection.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.send({"results": results, "errors": errors})
    out.close()


# --- report -------------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def row(name: str, values: Sequence[float], target: float | None = None, p: float = 99) -> str:
    verdict = ""
    if target is not None:
        verdict = " ok" if percentile(values, p) < target else " **over**"
    return (
        f"| {name} | {len(values)} | {statistics.median(values):.1f} | {percentile(values, 95):.1f} | "
        f"{percentile(values, 99):.1f} | {max(values):.1f} |{verdict} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--processes", type=int, default=5, help="client processes the clients are spread over")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--think-ms", type=float, default=1000.0, help="mean pause between a client's requests")
    parser.add_argument("--server-threads", type=int, default=0, help="waitress threads (0: the daemon's default)")
    parser.add_argument("--burn-ms", type=float, default=40.0, help="CPU burnt per worker batch")
    parser.add_argument(
        "--worker-nice", type=int, default=None, help="the worker thread's nice increment (default: the daemon's)"
    )
    parser.add_argument("--wait-ms", type=float, default=0.0, help="idle wait per worker batch (a GPU-bound worker)")
    parser.add_argument(
        "--switch-interval-ms", type=float, default=None, help="sys.setswitchinterval for the server process"
    )
    parser.add_argument("--no-daemon", action="store_true", help="skip (c) and (d), the real daemon's runs")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="the real daemon's device")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--keep", type=Path, help="keep the folder (and its SQLite database) here; reused next time")
    args = parser.parse_args(argv)
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)

    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        url = args.database_url or f"sqlite:///{root / 'bench.db'}"
        started = time.perf_counter()
        if args.keep is not None and (root / "bench.db").exists() and not args.database_url:
            print(f"reusing {root / 'bench.db'}", file=sys.stderr)
            return run(args, root, url)
        build_database(url, args.images)
        print(
            f"built {args.images} images in {time.perf_counter() - started:.1f} s ({url.split(':')[0]})",
            file=sys.stderr,
        )
        return run(args, root, url)


def run(args: argparse.Namespace, root: Path, url: str) -> int:
    import storage
    from config import ensure_folders, load_settings
    from daemon.api.app import create_app
    from daemon.api.context import ApiContext
    from daemon.api.server import DEFAULT_THREADS, ApiServer
    from daemon.heap import freeze_startup_heap
    from daemon.metrics import Metrics
    from daemon.retention import RetentionRunner

    args.server_threads = args.server_threads or DEFAULT_THREADS
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth" lines are the point here
    settings = load_settings(None, cwd=root, environ={}, overrides={"api.token": TOKEN, "database_url": url})
    if args.worker_nice is None:
        args.worker_nice = settings.worker.nice
    ensure_folders(settings)
    engine = storage.create_engine(url, pool_size=args.server_threads + 4)
    sessions = storage.session_factory(engine)
    read = storage.session_factory(engine, readonly=True)

    def queue_counts() -> dict[str, int]:
        with read() as session:
            return {state.value: n for state, n in storage.count_by_state(session).items()}

    metrics = Metrics(queue_counts=queue_counts)
    context = ApiContext(
        settings=settings,
        sessions=sessions,
        metrics=metrics,
        intake=None,
        status=lambda: {
            "device": "cuda",
            "precision": "bf16",
            "model_version": "bench-1",
            "watchers": {},
            "worker": {},
        },
        retention=RetentionRunner(settings, sessions, metrics, storage.utcnow),
        clock=storage.utcnow,
        read_sessions=read,
    )
    server = ApiServer(create_app(context), "127.0.0.1", 0, threads=args.server_threads)
    freeze_startup_heap()  # as the daemon does before it serves
    server.start()
    lines: list[str] = []
    try:
        lines += filtered_listing(server.port)
        lines += [""] + concurrent(args, server.port, sessions)
    finally:
        server.stop()
        engine.dispose()
    if not args.no_daemon and url.startswith("sqlite:///"):
        print("\n".join(lines), flush=True)
        lines = []
        for part, (count, sides) in zip("cd", BURSTS, strict=True):
            lines += [""] + busy_daemon(args, Path(url.removeprefix("sqlite:///")), part, count, sides)
    print("\n".join(lines))
    return 0


def filtered_listing(port: int, repeat: int = 15) -> list[str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    lines = [
        "(a) GET /api/v1/images with filters, one at a time (ms; target < 100)",
        "",
        "| filter | requests | p50 | p95 | p99 | max | |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, path in FILTERS:
        times = []
        for _ in range(repeat + 2):
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            times.append((time.perf_counter() - started) * 1000)
            assert response.status == 200, body[:200]
        items = len(json.loads(body)["items"])
        lines.append(row(f"{name} ({items} items)", times[2:], TARGET_MS, p=100))
    connection.close()
    return lines


def run_clients(args: argparse.Namespace, port: int) -> tuple[dict[str, list[float]], list[str]]:
    """``--clients`` polling clients spread over ``--processes`` processes for ``--seconds``; latencies and errors."""
    context = multiprocessing.get_context("spawn")
    per_process = [
        args.clients // args.processes + (1 if i < args.clients % args.processes else 0) for i in range(args.processes)
    ]
    pipes, processes = [], []
    for index, threads in enumerate(per_process):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=client_process, args=(port, threads, args.seconds, args.think_ms, index, send))
        pipes.append(receive)
        processes.append(process)
    for process in processes:
        process.start()
    outcomes = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join()
    merged: dict[str, list[float]] = {STATUS: [], IMAGES: []}
    errors: list[str] = []
    for outcome in outcomes:
        for path, values in outcome["results"].items():
            merged[path] += values
        errors += outcome["errors"]
    return merged, errors


def concurrent(args: argparse.Namespace, port: int, sessions: Any) -> list[str]:
    worker = BusyWorker(sessions, args.burn_ms, args.wait_ms, args.worker_nice)
    worker.start()
    try:
        merged, errors = run_clients(args, port)
    finally:
        worker.stop()
    total = sum(len(values) for values in merged.values())
    load = os.getloadavg()[0]
    heading = (
        f"(b) {args.clients} concurrent clients for {args.seconds:g} s, ~{args.think_ms:g} ms think time, "
        f"{args.server_threads} server threads, GIL switch {sys.getswitchinterval() * 1000:g} ms; "
        f"worker busy ({worker.batches} batches committed, "
        f"{args.burn_ms:g} ms CPU + {args.wait_ms:g} ms idle each, nice {worker.nice}); "
        f"{total / args.seconds:.0f} requests/s, {len(errors)} errors; {os.cpu_count()} CPUs, load average "
        f"{load:.1f} at the end (ms; target p99 < 100)"
    )
    return latency_table(heading, merged, errors)


def busy_daemon(args: argparse.Namespace, database: Path, part: str, count: int, sides: tuple[int, int]) -> list[str]:
    """The same clients against the real daemon (a subprocess, its own API server and worker) on a copy of the
    database, while its worker enhances a burst of ``count`` files: every commit and every CPU cycle of the real
    pipeline competes with the API, at the rate the daemon really reaches."""
    import storage
    from bench.daemon import Daemon, make_images, wait_for, write_all
    from config.defaults import WORKER_NICE as DEFAULT_WORKER_NICE
    from daemon.api.server import DEFAULT_THREADS as DEFAULT_SERVER_THREADS

    with tempfile.TemporaryDirectory(prefix="bench-api-daemon-") as scratch:
        site = Path(scratch)
        (site / "var").mkdir()
        copied = site / "var" / "enhancerd.db"
        shutil.copyfile(database, copied)
        db = storage.create_engine(f"sqlite:///{copied}")
        sessions = storage.session_factory(db)
        with sessions.begin() as session:  # the synthetic queued rows name files that do not exist
            session.execute(
                sa_update(storage.Image)
                .where(storage.Image.state == storage.ImageState.QUEUED)
                .values(state=storage.ImageState.FAILED, error="bench: synthetic row without a file")
            )
        started_at = storage.utcnow()

        def counts() -> tuple[int, int]:
            """(done, still waiting or in progress) among the burst's images."""
            with sessions() as session:
                new = storage.ImageFilter(created_from=started_at)
                done = storage.count_images(session, dataclasses.replace(new, states=[storage.ImageState.DONE]))
                waiting = [storage.ImageState.QUEUED, storage.ImageState.PROCESSING]
                return done, storage.count_images(session, dataclasses.replace(new, states=waiting))

        daemon = Daemon(site, args.device, token=TOKEN)
        daemon.start()
        try:
            images = make_images(count, sides=sides)
            write_all(site / "staging", images)
            for name in images:
                target = site / "inbox" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(site / "staging" / name, target)
            wait_for(lambda: counts()[0] >= 3, 600, "the daemon's worker to get going", interval=0.2)
            done_before, _ = counts()
            window_started = time.monotonic()
            merged, errors = run_clients(args, daemon.port)
            window = time.monotonic() - window_started
            done_after, waiting = counts()
            load = os.getloadavg()[0]
        finally:
            code = daemon.stop()
            db.dispose()
    total = sum(len(values) for values in merged.values())
    busy = "busy throughout" if waiting > 0 else "**the burst ran out before the clients stopped**"
    heading = (
        f"({part}) the same {args.clients} clients against the real daemon (`python -m daemon run`, "
        f"device {args.device}, "
        f"default settings: {DEFAULT_SERVER_THREADS} API threads, worker nice {DEFAULT_WORKER_NICE}) on a copy of "
        f"the database, while its worker enhanced a burst of {count} files of {sides[0]}-{sides[1]} px a side: "
        f"{(done_after - done_before) / window:.1f} images/s committed during the {window:.0f} s window, "
        f"{waiting} still queued at its end ({busy}); {total / args.seconds:.0f} requests/s, {len(errors)} errors; "
        f"load average {load:.1f}; daemon exit status {code} (ms; target p99 < 100)"
    )
    return latency_table(heading, merged, errors)


def latency_table(heading: str, merged: dict[str, list[float]], errors: list[str]) -> list[str]:
    """A concurrent run as markdown: its heading, one row per endpoint, and the first errors if any."""
    lines = [
        heading,
        "",
        "| endpoint | requests | p50 | p95 | p99 | max | |",
        "|---|---|---|---|---|---|---|",
        row("GET /api/v1/status", merged[STATUS], TARGET_MS),
        row("GET /api/v1/images?state=done&limit=50", merged[IMAGES], TARGET_MS),
    ]
    if errors:
        lines.append(f"first errors: {errors[:3]}")
    return lines


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
