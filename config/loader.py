"""Load settings once: embedded defaults < TOML file < ``ENHANCERD_*`` environment < command-line overrides.

Values are converted by the type of the dataclass field they land in, so a key's name, type and default live in one
place (:mod:`config.settings`, :mod:`config.defaults`). TOML values must already have the right type; environment and
command-line values are text and are parsed (``"8750"`` → 8750, ``"true"`` → True, ``"a,b"`` → ("a", "b")).
Every problem is collected and reported together in one :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from config import defaults as d
from config.settings import (
    ApiSettings,
    InboxSettings,
    LoggingSettings,
    ProfileSettings,
    RetentionPolicy,
    RetentionSettings,
    Settings,
    WatcherSettings,
    WorkerSettings,
)
from config.validate import validate

ENV_PREFIX = "ENHANCERD_"
"""Environment overrides: ``ENHANCERD_<SECTION>_<KEY>``, ``ENHANCERD_<TOPKEY>``, ``ENHANCERD_INBOX_<N>_<KEY>``."""

TOP_LEVEL: dict[str, Any] = {"data_dir": Path, "database_url": str | None}
SECTIONS: dict[str, type] = {
    "api": ApiSettings,
    "worker": WorkerSettings,
    "watcher": WatcherSettings,
    "retention": RetentionSettings,
    "logging": LoggingSettings,
}
_INBOX_NESTED = ("retention",)  # the [inbox.retention] sub-table, converted on its own
_FOREVER = frozenset({"", "none", "null", "forever", "never"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """The configuration is unusable; ``problems`` holds one clear line per mistake."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class _Text(str):
    """A value given as text (environment or command line), parsed by the target field's type; knows its origin."""

    origin: str

    def __new__(cls, value: str, origin: str) -> _Text:
        self = super().__new__(cls, value)
        self.origin = origin
        return self


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Read, merge, convert and validate the configuration; raise :class:`ConfigError` listing every problem.

    ``path=None`` uses the embedded default (everything under ``./var``). ``environ`` defaults to ``os.environ``;
    ``overrides`` maps dotted keys (``"api.port"``, ``"inbox.0.path"``, ``"profiles.default.strength"``) to values.
    """
    config_file = Path(path).expanduser().resolve() if path is not None else None
    base = config_file.parent if config_file is not None else (cwd or Path.cwd()).resolve()
    problems: list[str] = []
    warnings: list[str] = []
    raw = _read_toml(config_file) if config_file is not None else {}
    source = str(config_file) if config_file is not None else "default config"
    _normalise_inbox_list(raw, problems, source)
    _apply_environment(raw, os.environ if environ is None else environ, problems, warnings)
    _apply_overrides(raw, overrides or {}, problems)
    builder = _Builder(base=base, source=source, problems=problems)
    settings = builder.settings(raw, config_file, tuple(warnings))
    if settings is not None:
        problems.extend(validate(settings))
    if problems or settings is None:
        raise ConfigError(problems or ["configuration could not be built"])
    return settings


def _read_toml(config_file: Path) -> dict[str, Any]:
    try:
        with config_file.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"config file not found: {config_file}"]) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"{config_file}: {exc}"]) from None


def _normalise_inbox_list(raw: dict[str, Any], problems: list[str], source: str) -> None:
    """No ``[[inbox]]`` means the default inbox; a single ``[inbox]`` table is accepted as one entry."""
    inbox = raw.get("inbox")
    if inbox is None:
        raw["inbox"] = [{}]
    elif isinstance(inbox, dict):
        raw["inbox"] = [inbox]
    elif not isinstance(inbox, list) or not all(isinstance(item, dict) for item in inbox):
        problems.append(f"{source}: 'inbox' must be written as [[inbox]] tables")
        raw["inbox"] = [{}]


# --- environment and command-line overrides ---------------------------------------------------------------------


def _apply_environment(
    raw: dict[str, Any], environ: Mapping[str, str], problems: list[str], warnings: list[str]
) -> None:
    """Turn ``ENHANCERD_*`` variables into raw keys; names matching no key only warn (other tools share the prefix)."""
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        segments = _env_segments(name[len(ENV_PREFIX) :].lower())
        if segments is None:
            warnings.append(f"environment variable {name} matches no configuration key; ignored")
            continue
        _put(raw, segments, _Text(environ[name], origin=name), name, problems)


def _env_segments(rest: str) -> list[str | int] | None:
    if rest in TOP_LEVEL:
        return [rest]
    for section, cls in SECTIONS.items():
        if rest.startswith(section + "_") and rest[len(section) + 1 :] in _field_names(cls):
            return [section, rest[len(section) + 1 :]]
    match = re.fullmatch(r"inbox_(\d+)_(\w+)", rest)
    if match:
        index, key = int(match.group(1)), match.group(2)
        if key.startswith("retention_") and key[len("retention_") :] in _field_names(RetentionPolicy):
            return ["inbox", index, "retention", key[len("retention_") :]]
        if key in _field_names(InboxSettings):
            return ["inbox", index, key]
    if rest.startswith("profiles_"):
        for key in _field_names(ProfileSettings, skip=("name",)):
            if rest.endswith("_" + key) and len(rest) > len("profiles_") + len(key) + 1:
                return ["profiles", rest[len("profiles_") : -len(key) - 1], key]
    return None


def _apply_overrides(raw: dict[str, Any], overrides: Mapping[str, object], problems: list[str]) -> None:
    """Command-line overrides: dotted keys checked against the schema; text values are parsed like the environment."""
    for dotted, value in overrides.items():
        origin = f"override {dotted}"
        segments = _dotted_segments(dotted, problems, origin)
        if segments is not None:
            _put(raw, segments, _Text(value, origin) if isinstance(value, str) else value, origin, problems)


def _dotted_segments(dotted: str, problems: list[str], origin: str) -> list[str | int] | None:
    parts = dotted.split(".")
    head, rest = parts[0], parts[1:]
    if head in TOP_LEVEL and not rest:
        return [head]
    if head in SECTIONS and len(rest) == 1:
        return _checked([head, rest[0]], rest[0], _field_names(SECTIONS[head]), problems, origin)
    if head == "inbox" and len(rest) in (2, 3) and rest[0].isdigit():
        if len(rest) == 3 and rest[1] == "retention":
            return _checked(
                ["inbox", int(rest[0]), "retention", rest[2]], rest[2], _field_names(RetentionPolicy), problems, origin
            )
        if len(rest) == 2:
            return _checked(["inbox", int(rest[0]), rest[1]], rest[1], _field_names(InboxSettings), problems, origin)
    if head == "profiles" and len(rest) == 2:
        return _checked(["profiles", *rest], rest[1], _field_names(ProfileSettings, skip=("name",)), problems, origin)
    known = [*TOP_LEVEL, *(f"{s}.KEY" for s in SECTIONS), "inbox.N.KEY", "inbox.N.retention.KEY", "profiles.NAME.KEY"]
    problems.append(f"{origin}: unknown key '{dotted}' (known forms: {', '.join(known)})")
    return None


def _checked(
    segments: list[str | int], key: str, known: list[str], problems: list[str], origin: str
) -> list[str | int] | None:
    if key in known:
        return segments
    problems.append(f"{origin}: unknown key '{key}'{_did_you_mean(key, known)}")
    return None


def _put(raw: dict[str, Any], segments: list[str | int], value: object, origin: str, problems: list[str]) -> None:
    node: Any = raw
    for segment in segments[:-1]:
        if isinstance(segment, int):
            if segment >= len(node):
                problems.append(f"{origin}: there is no inbox {segment} (the config has {len(node)}; counting from 0)")
                return
            node = node[segment]
        else:
            node = node.setdefault(segment, {})
        if not isinstance(node, dict | list):
            problems.append(f"{origin}: '{segment}' is not a table in the config file")
            return
    node[segments[-1]] = value


# --- conversion -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Builder:
    """Converts the merged raw tree into settings objects, collecting every problem instead of stopping."""

    base: Path
    source: str
    problems: list[str]

    def settings(self, raw: dict[str, Any], config_file: Path | None, warnings: tuple[str, ...]) -> Settings | None:
        known = [*TOP_LEVEL, *SECTIONS, "inbox", "profiles"]
        for key in raw:
            if key not in known:
                self.problems.append(f"{self.source}: unknown top-level key '{key}'{_did_you_mean(key, known)}")
        top = {key: self.convert(raw[key], hint, key) for key, hint in TOP_LEVEL.items() if key in raw}
        top = {key: value for key, value in top.items() if value is not _INVALID}
        sections = {name: cls(**self.table(cls, raw.get(name, {}), f"[{name}]")) for name, cls in SECTIONS.items()}
        sections["api"] = self.resolve_token(sections["api"])
        profiles = self.profiles(raw.get("profiles", {}))
        inboxes = tuple(self.inbox(i, table, sections) for i, table in enumerate(raw["inbox"]))
        if any(inbox is None for inbox in inboxes):
            return None
        data_dir = top.get("data_dir") or self.path(d.DATA_DIR)
        database_url = top.get("database_url") or f"sqlite:///{data_dir / d.DATABASE_FILE}"
        return Settings(
            data_dir=data_dir,
            database_url=database_url,
            inboxes=typing.cast(tuple[InboxSettings, ...], inboxes),
            profiles=profiles,
            config_file=config_file,
            warnings=warnings,
            **sections,
        )

    def inbox(self, index: int, table: dict[str, Any], sections: dict[str, Any]) -> InboxSettings | None:
        where = f"[[inbox]] {index}"
        kwargs = self.table(InboxSettings, table, where, nested=_INBOX_NESTED)
        kwargs.setdefault("path", self.path(d.INBOX_PATH))
        kwargs.setdefault("output", self.path(d.INBOX_OUTPUT))
        kwargs.setdefault("archive", self.path(d.INBOX_ARCHIVE))
        kwargs.setdefault("failed", kwargs["archive"].parent / "failed")
        kwargs.setdefault("name", re.sub(r"[^A-Za-z0-9._-]+", "-", kwargs["path"].name) or f"inbox{index}")
        kwargs.setdefault("settle_seconds", sections["watcher"].settle_seconds)
        kwargs["extensions"] = tuple(_extension(ext) for ext in kwargs.get("extensions", d.INBOX_EXTENSIONS))
        policy = self.table(RetentionPolicy, table.get("retention", {}), f"{where} retention")
        kwargs["retention"] = dataclasses.replace(sections["retention"].default_policy, **policy)
        try:
            return InboxSettings(**kwargs)
        except TypeError as exc:  # only reachable through a bug in this module, but say which inbox
            self.problems.append(f"{self.source}: {where}: {exc}")
            return None

    def profiles(self, raw: object) -> tuple[ProfileSettings, ...]:
        if not isinstance(raw, dict):
            self.problems.append(f"{self.source}: 'profiles' must be a table of [profiles.NAME] tables")
            return (ProfileSettings(name=d.PROFILE_NAME),)
        profiles = {d.PROFILE_NAME: ProfileSettings(name=d.PROFILE_NAME)}
        for name, table in raw.items():
            kwargs = self.table(ProfileSettings, table, f"[profiles.{name}]", exclude=("name",))
            profiles[name] = ProfileSettings(name=name, **kwargs)
        return tuple(profiles.values())

    def table(
        self, cls: type, table: object, where: str, nested: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Keyword arguments for ``cls`` from a raw table: unknown keys and wrong types become problems.

        ``nested`` keys are sub-tables the caller converts itself; ``exclude`` keys are fields set by the caller (and
        therefore unknown in the file).
        """
        if not isinstance(table, dict):
            self.problems.append(f"{self.source}: {where} must be a table, got {_describe(table)}")
            return {}
        hints = typing.get_type_hints(cls)
        names = _field_names(cls, skip=exclude)
        kwargs: dict[str, Any] = {}
        for key, value in table.items():
            if key in nested:
                continue
            if key not in names:
                origin = value.origin if isinstance(value, _Text) else f"{self.source}: {where}"
                self.problems.append(f"{origin}: unknown key '{key}'{_did_you_mean(key, names)}")
                continue
            converted = self.convert(value, hints[key], f"{where} {key}")
            if converted is not _INVALID:
                kwargs[key] = converted
        return kwargs

    def convert(self, value: object, hint: Any, where: str) -> Any:
        try:
            converted = _convert(value, hint)
        except (TypeError, ValueError) as exc:
            origin = value.origin if isinstance(value, _Text) else f"{self.source}: {where}"
            self.problems.append(f"{origin}: {exc}")
            return _INVALID
        return self.path(converted) if isinstance(converted, Path) else converted

    def resolve_token(self, api: ApiSettings) -> ApiSettings:
        """An empty ``token`` falls back to the first line of ``token_file``, read once here."""
        if api.token or api.token_file is None:
            return dataclasses.replace(api, token=api.token.strip())
        try:
            lines = api.token_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            self.problems.append(f"{self.source}: [api] token_file: cannot read {api.token_file}: {exc.strerror}")
            return api
        return dataclasses.replace(api, token=lines[0].strip() if lines else "")

    def path(self, value: str | Path) -> Path:
        """Relative paths are relative to the config file's folder (the current folder for the embedded default)."""
        return (self.base / Path(value).expanduser()).resolve()


_INVALID = object()


def _convert(value: object, hint: Any) -> Any:
    """Convert one raw value to ``hint``: strict for TOML values, parsing for text from the environment or CLI."""
    text = isinstance(value, _Text)
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        if text and str(value).strip().lower() in _FOREVER:
            return None
        if not text and isinstance(value, str) and value.strip().lower() in ("forever", "never", "none"):
            return None
        return _convert(value, next(arg for arg in args if arg is not type(None)))
    if hint is bool:
        return _to_bool(value, text)
    if hint is int or hint is float:
        return _to_number(value, hint, text)
    if hint is str or hint is Path:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {_describe(value)}")
        return Path(str(value)) if hint is Path else str(value)
    if typing.get_origin(hint) is tuple:
        return _to_strings(value, text)
    if isinstance(hint, type) and issubclass(hint, Enum):
        choices = [member.value for member in hint]
        if isinstance(value, str) and value.strip().lower() in choices:
            return hint(value.strip().lower())
        raise ValueError(f"expected one of {' | '.join(choices)}, got {_describe(value)}")
    raise TypeError(f"unsupported setting type {hint!r}")


def _to_bool(value: object, text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if text and str(value).strip().lower() in _TRUE | _FALSE:
        return str(value).strip().lower() in _TRUE
    raise TypeError(f"expected true or false, got {_describe(value)}")


def _to_number(value: object, hint: type, text: bool) -> int | float:
    kind = "an integer" if hint is int else "a number"
    if text:
        try:
            return hint(str(value).strip())
        except ValueError:
            raise ValueError(f"expected {kind}, got {_describe(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or (hint is int and isinstance(value, float)):
        raise TypeError(f"expected {kind}, got {_describe(value)}")
    return hint(value)


def _to_strings(value: object, text: bool) -> tuple[str, ...]:
    if text:
        return tuple(part.strip() for part in str(value).split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise TypeError(f"expected a list of strings, got {_describe(value)}")


def _extension(ext: str) -> str:
    return ext.strip().lower().lstrip(".")


def _field_names(cls: type, skip: tuple[str, ...] = ()) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in skip]


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(known)})"


def _describe(value: object) -> str:
    return f"{str(value)!r}" if isinstance(value, _Text) else f"{value!r} ({type(value).__name__})"
