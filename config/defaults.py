"""Every default of the daemon's configuration, named and explained in one place.

Relative paths are resolved against the folder of the config file (or the current directory for the embedded default),
so the defaults below put everything under ``./var/`` as the outside contract asks.
"""

from __future__ import annotations

# --- top level ----------------------------------------------------------------------------------------------------

DATA_DIR = "var"
"""Holds the SQLite database, the trash and the work folders; relative to the config file's folder."""

DATABASE_FILE = "enhancerd.db"
"""Name of the SQLite file inside ``data_dir`` when ``database_url`` is not set."""

DATABASE_URL: str | None = None
"""SQLAlchemy URL of the database; ``None`` means the SQLite file ``data_dir/enhancerd.db``."""

TRASH_FOLDER = "trash"
"""Retention moves deleted files into ``data_dir/trash`` first, so a mistake can be undone for ``trash_days``."""

WORK_FOLDER = "work"
"""Scratch space inside ``data_dir`` (uploads being received, decoded intermediates)."""

# --- [[inbox]] ----------------------------------------------------------------------------------------------------

INBOX_PATH = "var/inbox"
"""The watched folder (recursively)."""

INBOX_OUTPUT = "var/outbox"
"""Where enhanced files go, mirroring the inbox's subfolders; refused when inside any watched inbox."""

INBOX_ORIGINALS = "archive"
"""What happens to an original once its result is committed: ``keep`` | ``archive`` | ``delete``."""

INBOX_ARCHIVE = "var/archive"
"""Where originals are moved under ``originals = "archive"``."""

INBOX_FAILED: str | None = None
"""Where permanently failed originals go (with ``<name>.error.txt``); ``None`` = ``failed`` beside the archive."""

INBOX_CREATE = True
"""Create a missing inbox at start-up. Set ``false`` for network mounts so an unmounted share is refused, not masked."""

INBOX_POLLING = False
"""Poll the folder instead of using inotify (network shares, FUSE); also the automatic fallback when inotify fails."""

INBOX_PROFILE = "default"
"""Name of the ``[profiles.NAME]`` table whose enhancement settings this inbox uses."""

INBOX_OUTPUT_FORMAT = "same"
"""Output encoding: ``same`` (the input's format) | ``png`` | ``jpeg`` | ``webp`` | ``tiff``."""

INBOX_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp")
"""Only files with these extensions (case-insensitive, written with or without the dot) are considered; content
sniffing confirms them. Stored lower case without the dot, as the watcher compares them."""

INBOX_IGNORE: tuple[str, ...] = ()
"""Glob patterns ignored in addition to the built-in ones (dotfiles, ``*.part``, ``Thumbs.db``, ...)."""

# --- [api] --------------------------------------------------------------------------------------------------------

API_HOST = "127.0.0.1"
"""Listen address; anything but loopback requires a token."""

API_PORT = 8750
"""Listen port (0 = any free port, for tests)."""

API_TOKEN = ""
"""Bearer token; also ``ENHANCERD_API_TOKEN``. Empty = no token (allowed only on loopback)."""

API_TOKEN_FILE: str | None = None
"""File whose first line is the token, used when ``token`` is empty (keeps secrets out of the config file)."""

API_MAX_UPLOAD_MB = 100.0
"""Largest accepted upload, in MiB (413 above it)."""

# --- [worker] -----------------------------------------------------------------------------------------------------

WORKER_BATCH_SIZE = 8
"""Most images claimed and fed to the engine at once."""

WORKER_MAX_WAIT_MS = 50
"""How long a partly filled batch waits for more images before it runs."""

WORKER_DECODE_THREADS = 2
"""Threads decoding and analysing images, overlapped with the engine."""

WORKER_NICE = 10
"""How much lower the CPU priority of the worker's threads is than the API's (Linux nice increment; 0 = equal)."""

WORKER_LEASE_SECONDS = 300.0
"""A claimed image returns to the queue when its lease is not renewed for this long (crash recovery)."""

WORKER_MAX_ATTEMPTS = 5
"""Attempts (claims) before an image with transient failures is marked ``failed``."""

WORKER_BACKOFF_BASE_SECONDS = 5.0
"""First retry delay; it doubles with every attempt."""

WORKER_BACKOFF_MAX_SECONDS = 600.0
"""Upper bound of the retry delay."""

WORKER_DEVICE = "auto"
"""``auto`` (CUDA when available) | ``cpu`` | ``cuda``."""

WORKER_TILE = 0
"""Tile side in pixels; 0 = auto: the engine chooses per device (``core.engine``: on CPU 3072 px for the built-in
model, run in stripes, and 2048 px for other models, the measured best throughput on the 2-core bench machine;
1024 px on CUDA, where batches fill the GPU). There is no whole-image mode:
tiles keep memory bounded on 50 MP photos, and the context around each tile makes the seams invisible."""

WORKER_TILE_MIN = 16
"""Smallest tile side other than 0 (the engine refuses smaller ones); the engine rounds it to the model's multiple."""

WORKER_ENSEMBLE = 1
"""Views of each tile the model sees and averages (geometric self-ensemble): 1, 2, 4 or 8. More views restore a
little better (built-in model, sigma 25: +0.12 dB with 2, +0.19 dB with 8 on 10 CBSD68 images) for 2x / 8x the
model time, so the default stays 1 and a pipeline that values quality over throughput opts in."""

WORKER_ENSEMBLE_SIZES = (1, 2, 4, 8)
"""The accepted ``ensemble`` values (``core.ensemble.ENSEMBLE_SIZES``; config does not import core)."""

WORKER_MODEL = "builtin"
"""``builtin`` for the shipped weights, or a path to a weights file."""

WORKER_MAX_MEGAPIXELS = 100.0
"""Larger images fail permanently as ``too large`` instead of exhausting memory."""

# --- [profiles.NAME] ----------------------------------------------------------------------------------------------

PROFILE_NAME = "default"
"""The profile that always exists (its values can be changed with ``[profiles.default]``)."""

PROFILE_STRENGTH = 1.0
"""Enhancement strength: 0 returns the input unchanged, 1 is the model's full effect."""

PROFILE_MODEL: str | None = None
"""Model for this profile; ``None`` = ``[worker] model``."""

PROFILE_QUALITY = 95
"""Encoder quality for lossy outputs (JPEG, WebP), 1-100."""

PROFILE_ENSEMBLE = 0
"""Self-ensemble views for this profile's images (1, 2, 4 or 8); 0 = ``[worker] ensemble``. Lets an archive inbox
spend 8x the model time per image while a bulk inbox beside it stays fast."""

# --- [watcher] ----------------------------------------------------------------------------------------------------

WATCHER_SETTLE_SECONDS = 2.0
"""A file is ready once its size and mtime have not changed for this long (per-inbox ``settle_seconds`` overrides)."""

WATCHER_RESCAN_SECONDS = 300.0
"""Full rescan period of every inbox: inotify drops events on overflow without telling anyone (0 disables it)."""

WATCHER_POLL_INTERVAL_SECONDS = 2.0
"""Interval of the polling observer (inboxes with ``polling = true`` or without inotify)."""

# --- [retention] --------------------------------------------------------------------------------------------------

RETENTION_SCHEDULE = "0 3 * * *"
"""Cron expression (minute hour day month weekday) of the retention run; nightly at 03:00 by default."""

RETENTION_TRASH_DAYS = 7.0
"""Days deleted files stay in ``data_dir/trash`` before they are purged (0 = delete at once)."""

RETENTION_DAYS: float | None = None
"""Default of ``outputs_days``, ``originals_days`` and ``failed_days``: ``None`` (``"forever"``) keeps files forever."""

RETENTION_MAX_DISK_GB: float | None = None
"""Per-inbox disk ceiling for outputs, oldest deleted first; ``None`` = no ceiling."""

# --- [logging] ----------------------------------------------------------------------------------------------------

LOGGING_LEVEL = "INFO"
"""Root log level (DEBUG, INFO, WARNING, ERROR)."""

LOGGING_FORMAT = "text"
"""``text`` (human readable) | ``json`` (one object per line)."""
