"""Platforms: where a graph runs (local processes or Kubernetes)."""
