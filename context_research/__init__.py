"""context-research: Hydra-composed experiments for long-context LLM serving research.

Importing the package (or `context_research.config`) never imports torch or vLLM: engines are
imported lazily by the objects Hydra instantiates.
"""

__version__ = "0.1.0"
