"""The configuration file ``wirehub genconfig`` writes: every setting, commented out at its default."""

import dataclasses
import json
from typing import Any

from wirehub.config.settings import SECTIONS, Settings

__all__ = ["default_config_toml"]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def default_config_toml() -> str:
    """A configuration file with every setting, commented out at its default (``genconfig``)."""
    defaults = Settings()
    lines = [
        "# wirehub configuration: every setting at its default, commented out.",
        "# Uncomment what you change. Each key can also be set from the environment as",
        "# WIREHUB_<SECTION>_<KEY> (e.g. WIREHUB_SERVER_PORT), or read from a file named by",
        "# WIREHUB_<SECTION>_<KEY>_FILE. `wirehub check --config FILE` validates a file.",
    ]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for f in dataclasses.fields(SECTIONS[section]):
            lines.append(f"# {f.name} = {_toml_value(getattr(getattr(defaults, section), f.name))}")
    lines += ["", "# The built-in namespaces: a file with a [namespaces] table has only its own."]
    for name, options in defaults.namespaces.items():
        lines += ["", f"[namespaces.{name}]"]
        for f in dataclasses.fields(options):
            lines.append(f"{f.name} = {_toml_value(getattr(options, f.name))}")
    return "\n".join(lines) + "\n"
