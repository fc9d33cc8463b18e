"""Building the settings once from a TOML file and ``WIREHUB_*`` environment variables.

Every key of the file can be overridden by ``WIREHUB_<SECTION>_<KEY>`` (``WIREHUB_SERVER_PORT``,
``WIREHUB_NAMESPACES_CHAT_PRESENCE``); secrets may instead come from a file named by
``WIREHUB_<SECTION>_<KEY>_FILE``. Loading collects every problem, each naming its key, and
raises one ``ConfigError``.
"""

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wirehub.config.settings import SECTIONS, NamespaceOptions, Settings, default_namespaces
from wirehub.config.validation import validate
from wirehub.errors import ConfigError

__all__ = ["NAMESPACE_NAME", "load_settings", "unknown_env_keys"]

NAMESPACE_NAME = re.compile(r"^[-a-zA-Z0-9_]{2,}$")
STRINGS = tuple[str, ...]
"""The type of list-valued keys: a TOML array of strings, or a comma-separated environment value."""
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def load_settings(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from an optional TOML file, then apply ``WIREHUB_*`` overrides.

    The overrides come from ``env``, or from ``os.environ`` when ``env`` is None.

    Without a file the built-in defaults apply, including the ``chat`` namespace; a file that
    has a ``[namespaces]`` table replaces that default with its own namespaces.
    """
    if env is None:
        env = os.environ
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such file"]) from None
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None

    for key in raw:
        if key not in SECTIONS and key != "namespaces":
            problems.append(f"{key}: unknown section")

    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{name}: expected a table")
            table = {}
        sections[name] = _build(cls, name, table, env or {}, problems)

    namespaces: dict[str, NamespaceOptions] = {}
    ns_tables = raw.get("namespaces")
    if ns_tables is None:
        ns_tables = {name: dataclasses.asdict(opts) for name, opts in default_namespaces().items()}
    if not isinstance(ns_tables, dict):
        problems.append("namespaces: expected a table of tables")
        ns_tables = {}
    for ns_name, table in ns_tables.items():
        key = f"namespaces.{ns_name}"
        if not NAMESPACE_NAME.match(ns_name):
            problems.append(f"{key}: namespace names match {NAMESPACE_NAME.pattern}")
        if not isinstance(table, dict):
            problems.append(f"{key}: expected a table")
            continue
        namespaces[ns_name] = _build(NamespaceOptions, key, table, env or {}, problems)

    settings = Settings(namespaces=namespaces, **sections)
    problems.extend(validate(settings))
    if problems:
        raise ConfigError(problems)
    return settings


def _env_name(full_key: str) -> str:
    return "WIREHUB_" + re.sub(r"[^A-Za-z0-9]", "_", full_key).upper()


def unknown_env_keys(env: Mapping[str, str]) -> list[str]:
    """The ``WIREHUB_*`` variables in ``env`` that name no setting (a typo is otherwise silent)."""
    known = {
        _env_name(f"{section}.{f.name}") for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)
    }
    namespace_keys = tuple("_" + f.name.upper() for f in dataclasses.fields(NamespaceOptions))
    unknown = []
    for name in env:
        if not name.startswith("WIREHUB_"):
            continue
        base = name.removesuffix("_FILE")
        if base in known or (base.startswith("WIREHUB_NAMESPACES_") and base.endswith(namespace_keys)):
            continue
        unknown.append(name)
    return sorted(unknown)


def _build(
    cls: type[Any], section: str, table: Mapping[str, Any], env: Mapping[str, str], problems: list[str]
) -> Any:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in known:
            problems.append(f"{section}.{key}: unknown key")
    for f in dataclasses.fields(cls):
        full_key = f"{section}.{f.name}"
        env_name = _env_name(full_key)
        kind = hints[f.name]
        if env_name in env:
            value: Any = _from_env(env[env_name], kind, full_key, problems)
        elif env_name + "_FILE" in env:
            value = _read_secret_file(env[env_name + "_FILE"], full_key, problems)
            if value is not None and kind is not str:
                # A file may hold any key's value; it reads like the environment form.
                value = _from_env(value, kind, full_key, problems)
        elif f.name in table:
            value = _check_type(table[f.name], kind, full_key, problems)
        else:
            continue
        if value is not None:
            values[f.name] = value
    return cls(**values)


def _check_type(value: Any, kind: Any, key: str, problems: list[str]) -> Any:
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == STRINGS:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        problems.append(f"{key}: expected {_kind_name(kind)}, got {type(value).__name__} {value!r}")
        return None
    return value


def _from_env(text: str, kind: Any, key: str, problems: list[str]) -> Any:
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(text)
            return lowered in _TRUE
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind == STRINGS:
            return tuple(item.strip() for item in text.split(",") if item.strip())
    except ValueError:
        problems.append(f"{key}: expected {_kind_name(kind)} from the environment, got {text!r}")
        return None
    return text


def _read_secret_file(path: str, key: str, problems: list[str]) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(f"{key}: cannot read {path}: {exc.strerror}")
        return None


def _kind_name(kind: Any) -> str:
    if kind == STRINGS:
        return "a list of strings"
    return {bool: "a boolean", int: "an integer", float: "a number"}.get(kind, "a string")
