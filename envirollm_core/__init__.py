"""EnviroLLM core: everything that is not rendering."""

__version__ = "0.1.0"
