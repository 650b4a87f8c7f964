"""Typed, frozen settings read once from TOML, the environment and the command line (standard library only).

Only the composition root (``enhancerd run``, ``enhancerd init``) calls :func:`load_settings`; everything else receives
the plain objects below.
"""

from config.folders import ensure_folders, starter_text
from config.loader import ENV_PREFIX, ConfigError, load_settings
from config.settings import (
    ApiSettings,
    Device,
    InboxSettings,
    LogFormat,
    LoggingSettings,
    OriginalsPolicy,
    OutputFormat,
    ProfileSettings,
    RetentionPolicy,
    RetentionSettings,
    Settings,
    WatcherSettings,
    WorkerSettings,
)
from config.validate import is_loopback, log_level

__all__ = [
    "ENV_PREFIX",
    "ApiSettings",
    "ConfigError",
    "Device",
    "InboxSettings",
    "LogFormat",
    "LoggingSettings",
    "OriginalsPolicy",
    "OutputFormat",
    "ProfileSettings",
    "RetentionPolicy",
    "RetentionSettings",
    "Settings",
    "WatcherSettings",
    "WorkerSettings",
    "ensure_folders",
    "is_loopback",
    "load_settings",
    "log_level",
    "starter_text",
]
