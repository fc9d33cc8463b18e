"""Settings: one frozen tree built once from a TOML file and ``WIREHUB_*`` environment variables.

Option names follow Centrifugo's where one exists. Every key of the file can be overridden by
``WIREHUB_<SECTION>_<KEY>`` (``WIREHUB_SERVER_PORT``, ``WIREHUB_NAMESPACES_CHAT_PRESENCE``);
secrets may instead come from a file named by ``WIREHUB_<SECTION>_<KEY>_FILE``. Loading collects
every problem, each naming its key, and raises one ``ConfigError``.

The modules, by job: ``settings.py`` (the dataclasses and their defaults), ``loading.py`` (file,
environment and secret files into a tree), ``validation.py`` (the rules across keys),
``genconfig.py`` (the commented default file) and ``urls.py`` (URL schemes, redaction).
"""

from wirehub.config import settings
from wirehub.config.genconfig import default_config_toml
from wirehub.config.loading import load_settings, unknown_env_keys
from wirehub.config.settings import *  # noqa: F403 - every settings class, as settings.__all__ lists them
from wirehub.config.urls import redacted_url
from wirehub.config.validation import validate

__all__ = ["default_config_toml", "load_settings", "redacted_url", "unknown_env_keys", "validate"]
__all__ += settings.__all__  # every settings class, and the sections' table
