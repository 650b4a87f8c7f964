"""The frozen, validated settings objects handed down from the composition root.

Field names are the TOML keys; defaults come from :mod:`config.defaults`. Paths are absolute and resolved once by the
loader, so nothing below ``daemon/`` ever has to know where the config file was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from config import defaults as d


class OriginalsPolicy(StrEnum):
    """What happens to an original once its result is committed."""

    KEEP = "keep"
    ARCHIVE = "archive"
    DELETE = "delete"


class OutputFormat(StrEnum):
    """Encoding of the enhanced file."""

    SAME = "same"
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    TIFF = "tiff"


class Device(StrEnum):
    """Where the engine runs."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"
    """Apple GPUs, as ``enhance --device mps``."""


class LogFormat(StrEnum):
    """Shape of log lines."""

    TEXT = "text"
    JSON = "json"


_ORIGINALS = OriginalsPolicy(d.INBOX_ORIGINALS)
_OUTPUT_FORMAT = OutputFormat(d.INBOX_OUTPUT_FORMAT)
_DEVICE = Device(d.WORKER_DEVICE)
_LOG_FORMAT = LogFormat(d.LOGGING_FORMAT)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long files are kept; ``None`` keeps them forever (written ``"forever"`` in TOML)."""

    outputs_days: float | None = d.RETENTION_DAYS
    originals_days: float | None = d.RETENTION_DAYS
    failed_days: float | None = d.RETENTION_DAYS
    max_disk_gb: float | None = d.RETENTION_MAX_DISK_GB


@dataclass(frozen=True)
class InboxSettings:
    """One watched folder and what to do with what lands in it."""

    path: Path
    output: Path
    archive: Path
    failed: Path
    name: str
    settle_seconds: float
    retention: RetentionPolicy
    originals: OriginalsPolicy = _ORIGINALS
    create: bool = d.INBOX_CREATE
    polling: bool = d.INBOX_POLLING
    profile: str = d.INBOX_PROFILE
    output_format: OutputFormat = _OUTPUT_FORMAT
    extensions: tuple[str, ...] = d.INBOX_EXTENSIONS
    ignore: tuple[str, ...] = d.INBOX_IGNORE


@dataclass(frozen=True)
class ApiSettings:
    """The REST control plane. ``token`` is the resolved secret (from the file, the environment or ``token_file``)."""

    host: str = d.API_HOST
    port: int = d.API_PORT
    token: str = field(default=d.API_TOKEN, repr=False)
    token_file: Path | None = None
    max_upload_mb: float = d.API_MAX_UPLOAD_MB


@dataclass(frozen=True)
class WorkerSettings:
    """Batching, leasing, retries and the engine's device."""

    batch_size: int = d.WORKER_BATCH_SIZE
    max_wait_ms: int = d.WORKER_MAX_WAIT_MS
    decode_threads: int = d.WORKER_DECODE_THREADS
    nice: int = d.WORKER_NICE
    lease_seconds: float = d.WORKER_LEASE_SECONDS
    max_attempts: int = d.WORKER_MAX_ATTEMPTS
    backoff_base_seconds: float = d.WORKER_BACKOFF_BASE_SECONDS
    backoff_max_seconds: float = d.WORKER_BACKOFF_MAX_SECONDS
    device: Device = _DEVICE
    tile: int = d.WORKER_TILE
    ensemble: int = d.WORKER_ENSEMBLE
    model: str = d.WORKER_MODEL
    max_megapixels: float = d.WORKER_MAX_MEGAPIXELS


@dataclass(frozen=True)
class ProfileSettings:
    """A named set of enhancement parameters that inboxes refer to."""

    name: str
    strength: float = d.PROFILE_STRENGTH
    model: str | None = d.PROFILE_MODEL
    quality: int = d.PROFILE_QUALITY
    ensemble: int = d.PROFILE_ENSEMBLE


@dataclass(frozen=True)
class WatcherSettings:
    """Timing of the folder watchers."""

    settle_seconds: float = d.WATCHER_SETTLE_SECONDS
    rescan_seconds: float = d.WATCHER_RESCAN_SECONDS
    poll_interval_seconds: float = d.WATCHER_POLL_INTERVAL_SECONDS


@dataclass(frozen=True)
class RetentionSettings:
    """The retention schedule and the policy inboxes inherit unless they set their own ``[inbox.retention]``."""

    schedule: str = d.RETENTION_SCHEDULE
    trash_days: float = d.RETENTION_TRASH_DAYS
    outputs_days: float | None = d.RETENTION_DAYS
    originals_days: float | None = d.RETENTION_DAYS
    failed_days: float | None = d.RETENTION_DAYS
    max_disk_gb: float | None = d.RETENTION_MAX_DISK_GB

    @property
    def default_policy(self) -> RetentionPolicy:
        return RetentionPolicy(self.outputs_days, self.originals_days, self.failed_days, self.max_disk_gb)


@dataclass(frozen=True)
class LoggingSettings:
    """Log level and line format of the daemon."""

    level: str = d.LOGGING_LEVEL
    format: LogFormat = _LOG_FORMAT


@dataclass(frozen=True)
class Settings:
    """Everything the daemon and the API need, loaded once by :func:`config.load_settings`."""

    data_dir: Path
    database_url: str
    inboxes: tuple[InboxSettings, ...]
    profiles: tuple[ProfileSettings, ...]
    api: ApiSettings = ApiSettings()
    worker: WorkerSettings = WorkerSettings()
    watcher: WatcherSettings = WatcherSettings()
    retention: RetentionSettings = RetentionSettings()
    logging: LoggingSettings = LoggingSettings()
    config_file: Path | None = None
    warnings: tuple[str, ...] = ()
    """Things worth a log line that are not errors (e.g. an ``ENHANCERD_*`` variable that matches no key)."""

    @property
    def trash_dir(self) -> Path:
        return self.data_dir / d.TRASH_FOLDER

    @property
    def work_dir(self) -> Path:
        return self.data_dir / d.WORK_FOLDER

    def inbox(self, name: str) -> InboxSettings:
        for inbox in self.inboxes:
            if inbox.name == name:
                return inbox
        raise KeyError(name)

    def profile(self, name: str) -> ProfileSettings:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        raise KeyError(name)

    def folders(self) -> tuple[Path, ...]:
        """Every folder the daemon writes to or watches, in a stable order without repeats."""
        paths = [self.data_dir, self.trash_dir, self.work_dir]
        for inbox in self.inboxes:
            paths += [inbox.path, inbox.output, inbox.failed]
            if inbox.originals is OriginalsPolicy.ARCHIVE:
                paths.append(inbox.archive)
        return tuple(dict.fromkeys(paths))
