"""Kubernetes platform parts: client setup, errors, DGD building, exec, port-forward, cleanup."""
