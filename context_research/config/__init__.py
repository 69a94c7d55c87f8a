"""Configuration: dataclass schemas (registered in Hydra's ConfigStore) and their validation.

Importing this package registers the schemas and the `cr.*` resolvers; it imports neither torch nor
vLLM.
"""

from context_research.config.errors import ConfigError
from context_research.config.resolvers import register_resolvers
from context_research.config.store import register_schemas
from context_research.config.validation import validate

register_schemas()
register_resolvers()

__all__ = ["ConfigError", "register_resolvers", "register_schemas", "validate"]
