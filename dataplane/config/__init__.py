"""Load and validate the YAML configuration (SPEC §12). All validation lives here."""
from .model import Config  # noqa: F401
