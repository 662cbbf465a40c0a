"""Load and validate the YAML configuration (SPEC §12). All validation lives here."""
from .model import Config  # noqa: F401
from .validate import ConfigError, load, load_text  # noqa: F401

__all__ = ["Config", "ConfigError", "load", "load_text"]
