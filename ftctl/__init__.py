"""ftctl: YAML-driven fault-tolerance testing of LLM inference deployments."""

__version__ = "0.1.0"
