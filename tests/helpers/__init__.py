"""Shared test helpers: data roots, run folders, reference implementations, CLI runner."""
