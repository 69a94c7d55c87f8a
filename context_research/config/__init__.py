"""Configuration: dataclass schemas (registered in Hydra's ConfigStore) and their validation.

Importing this package registers the schemas; it imports neither torch nor vLLM.
"""

from context_research.config.errors import ConfigError
from context_research.config.store import register_schemas
from context_research.config.validation import one_line, validate

register_schemas()

__all__ = ["ConfigError", "one_line", "register_schemas", "validate"]
