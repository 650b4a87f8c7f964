"""End-to-end throughput, latency and memory of the daemon against the raw engine, in one markdown table.

    python -m bench.daemon [--images 1000] [--trickle 30] [--device cpu] [--keep DIR]

1. Raw engine: ``core.pipeline.enhance_images`` in-process on the files, with the daemon's own engine settings and
   analyser, after a warm-up (images per second, decode to encoded output).
2. The daemon as a subprocess (``python -m daemon run``) on a temporary folder:
   - trickle: files dropped one at a time, slower than the daemon works, for the latency of an idle daemon;
   - burst: every file dropped at once (renamed in from a staging folder), timed from the drop until the last output
     is committed (``finished_at`` in the database); its VmRSS is sampled from ``/proc`` throughout.
   Latency runs from the moment a file is settled (dropped + ``settle_seconds``) to its commit.
Images are 64-96 px photos-like gradients with noise, PNG and JPEG, in ten subfolders, generated with a fixed seed.
Pause other CPU-heavy work while this runs: it measures the machine.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parents[1]
SETTLE_SECONDS = 0.5
"""The daemon's settle time in this bench (the default 2 s would only add a constant to every latency)."""


@dataclass
class Sampler:
    """VmRSS of a process every ``interval`` seconds, on a thread (stopped and joined by ``stop``)."""

    pid: int
    interval: float = 0.2
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def now(self) -> int:
        return rss_kib(self.pid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append((time.monotonic(), rss_kib(self.pid)))
            except OSError:
                return

    @property
    def peak(self) -> int:
        return max((kib for _, kib in self.samples), default=0)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise OSError(f"no VmRSS for {pid}")


def make_images(count: int, seed: int = 7, sides: tuple[int, int] = (64, 96)) -> dict[str, bytes]:
    """``count`` photo-like files (gradient plus noise, PNG and JPEG alternating), each side in ``sides``."""
    rng = np.random.default_rng(seed)
    images: dict[str, bytes] = {}
    for i in range(count):
        height, width = (int(v) for v in rng.integers(sides[0], sides[1] + 1, size=2))
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 3), np.float32)
        pixels = np.clip(ramp + rng.normal(0, 18, (height, width, 3)), 0, 255).astype(np.uint8)
        fmt = "PNG" if i % 2 else "JPEG"
        buffer = io.BytesIO()
        PILImage.fromarray(pixels).save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
        images[f"set{i % 10}/img{i:04d}.{'png' if fmt == 'PNG' else 'jpg'}"] = buffer.getvalue()
    return images


def write_all(root: Path, images: dict[str, bytes]) -> list[Path]:
    paths = []
    for name, content in images.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        paths.append(path)
    return paths


# --- the raw engine ------------------------------------------------------------------------------------------------


def raw_engine(paths: list[Path], out: Path, device: str, main_limit: int) -> tuple[float, float]:
    """Images per second of ``core.pipeline.enhance_images`` with the daemon's engine settings and analyser.

    Measured on a second thread (as the daemon's worker runs it) on every file, and on the main thread (as
    ``enhancerd enhance`` runs it) on the first ``main_limit`` files: on small CPU machines PyTorch can be several
    times slower on the main thread (see the report of issue 5), and the rate is what is compared.
    """
    from config import load_settings
    from core.pipeline import EnhanceRequest, enhance_images
    from daemon.worker import load_engine, resolve_analyse

    settings = load_settings(None, environ={}, overrides={"worker.device": device}, cwd=out)
    engine = load_engine(settings.worker.model, settings.worker)
    analyse, _name = resolve_analyse()

    def timed(label: str, files: list[Path]) -> float:
        folder = out / label
        folder.mkdir(parents=True)
        requests = [EnhanceRequest(p, folder / f"{i}{p.suffix}") for i, p in enumerate(files)]
        list(enhance_images(requests[:16], engine, analyse=analyse))  # warm-up
        started = time.perf_counter()
        results = list(enhance_images(requests, engine, analyse=analyse))
        seconds = time.perf_counter() - started
        failures = [r for r in results if not r.ok]
        if failures:
            raise SystemExit(f"raw engine failed on {len(failures)} image(s): {failures[0].error}")
        return len(files) / seconds

    main_rate = timed("main", paths[:main_limit])
    rates: list[float] = []
    thread = threading.Thread(target=lambda: rates.append(timed("thread", paths)), name="raw-engine")
    thread.start()
    thread.join()
    if not rates:
        raise SystemExit("the raw engine failed on its thread")
    return main_rate, rates[0]


# --- the daemon ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    def __init__(self, site: Path, device: str, token: str = "") -> None:
        self.site = site
        self.port = free_port()
        self.config = site / "enhancerd.toml"
        self.config.write_text(
            f"""data_dir = "var"
[[inbox]]
path = "inbox"
output = "outbox"
originals = "archive"
archive = "archive"
settle_seconds = {SETTLE_SECONDS}
[api]
port = {self.port}
token = "{token}"
[worker]
device = "{device}"
[watcher]
rescan_seconds = 30
[logging]
level = "WARNING"
"""
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
        log = (self.site / "daemon.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(self.config)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self.healthy, 180, "the daemon to start")

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise SystemExit(f"the daemon exited: {(self.site / 'daemon.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=1) as reply:
                return reply.status == 200
        except OSError:
            return False

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.terminate()
        return self.process.wait(120)

    def finished(self) -> dict[str, datetime]:
        """``relative_path`` -> ``finished_at`` of every done image."""
        import storage
        from storage import Image, ImageState

        db = storage.create_engine(f"sqlite:///{self.site / 'var' / 'enhancerd.db'}")
        try:
            with storage.session_factory(db, readonly=True)() as session:
                query = session.query(Image.relative_path, Image.finished_at).filter(Image.state == ImageState.DONE)
                return {path: at for path, at in query if at is not None}
        finally:
            db.dispose()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def latencies(dropped: dict[str, float], finished: dict[str, datetime]) -> list[float]:
    return [finished[name].timestamp() - (at + SETTLE_SECONDS) for name, at in dropped.items() if name in finished]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="files in the burst (default 1000)")
    parser.add_argument("--trickle", type=int, default=30, help="files dropped one by one for the idle latency")
    parser.add_argument("--raw-main", type=int, default=200, help="files for the raw engine on the main thread")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="enhancerd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        images = make_images(args.images + args.trickle)
        names = list(images)
        burst_names, trickle_names = names[: args.images], names[args.images :]
        source = work / "source"
        paths = write_all(source, {name: images[name] for name in burst_names})

        print(f"raw engine on {len(paths)} images ...", file=sys.stderr)
        raw_main, raw_thread = raw_engine(paths, work / "raw", args.device, args.raw_main)
        raw = max(raw_main, raw_thread)

        site = work / "site"
        site.mkdir()
        daemon = Daemon(site, args.device)
        daemon.start()
        assert daemon.process is not None
        sampler = Sampler(daemon.process.pid)
        rss_ready = sampler.now()
        sampler.start()
        inbox = site / "inbox"
        try:
            print(f"trickle of {len(trickle_names)} ...", file=sys.stderr)
            trickle: dict[str, float] = {}
            for name in trickle_names:
                staged = write_all(site / "staging", {name: images[name]})[0]
                target = inbox / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staged, target)
                trickle[name] = time.time()
                wait_for(lambda n=name: n in daemon.finished(), 60, f"{name} to be enhanced", interval=0.05)
            trickle_latency = latencies(trickle, daemon.finished())
            rss_before_burst = sampler.now()

            print(f"burst of {len(burst_names)} ...", file=sys.stderr)
            staging = site / "staging"
            write_all(staging, {name: images[name] for name in burst_names})
            burst: dict[str, float] = {}
            started = time.time()
            for name in burst_names:
                target = inbox / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staging / name, target)
                burst[name] = time.time()
            rss_marks: dict[int, int] = {}

            def all_done() -> bool:
                finished = daemon.finished()
                count = sum(1 for name in burst_names if name in finished)
                for mark in (200, 500):
                    if count >= mark and mark not in rss_marks:
                        rss_marks[mark] = sampler.now()
                return count == len(burst_names)

            wait_for(all_done, 3600, "the burst to be enhanced", interval=0.5)
            finished = daemon.finished()
            rss_end = sampler.now()
        finally:
            sampler.stop()
            code = daemon.stop()
        times = sorted(finished[name].timestamp() for name in burst_names)
        end_to_end = len(burst_names) / (times[-1] - started)
        steady = (len(times) - 1) / (times[-1] - times[0])
        burst_latency = latencies(burst, finished)
        device = args.device
        rows = [
            ("images", f"{len(burst_names)} burst + {len(trickle_names)} trickle, 64-96 px PNG/JPEG, device {device}"),
            (
                f"raw engine, core pipeline in-process, main thread (first {min(args.raw_main, len(paths))} files)",
                f"{raw_main:.2f} img/s",
            ),
            (f"raw engine, core pipeline in-process, second thread ({len(paths)} files)", f"{raw_thread:.2f} img/s"),
            (
                "daemon, drop -> last output committed",
                f"{end_to_end:.2f} img/s ({100 * end_to_end / raw:.0f} % of the faster raw)",
            ),
            (
                "daemon, first -> last commit (steady state)",
                f"{steady:.2f} img/s ({100 * steady / raw:.0f} % of the faster raw)",
            ),
            (
                "latency settled -> committed, idle daemon (p50 / p95)",
                f"{statistics.median(trickle_latency):.3f} s / {percentile(trickle_latency, 95):.3f} s",
            ),
            (
                "latency settled -> committed, burst (p50 / p95)",
                f"{statistics.median(burst_latency):.1f} s / {percentile(burst_latency, 95):.1f} s",
            ),
            (
                "daemon RSS: ready / before burst / after 200 / after 500 / end",
                " / ".join(
                    f"{kib / 1024:.0f}"
                    for kib in (rss_ready, rss_before_burst, rss_marks.get(200, 0), rss_marks.get(500, 0), rss_end)
                )
                + " MiB",
            ),
            ("daemon RSS peak", f"{sampler.peak / 1024:.0f} MiB ({len(sampler.samples)} samples)"),
            ("daemon exit status after SIGTERM", str(code)),
        ]
        print("| measure | value |")
        print("|---|---|")
        for name, value in rows:
            print(f"| {name} | {value} |")
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
