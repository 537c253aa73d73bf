"""Shipped configuration defaults (read through importlib.resources)."""
