"""Packaging pyproject.toml cannot say: the top-level ``configs/`` folder (the presets) is installed inside the
package as ``abaw.configs`` (read with importlib.resources by ``abaw.presets``), so presets are found from any
install, editable or not. Everything else is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

CONFIGS = ["abaw.configs", *(f"abaw.configs.{p}" for p in find_namespace_packages(where="configs"))]

setup(packages=[*find_namespace_packages(include=["abaw*"]), *CONFIGS], package_dir={"abaw.configs": "configs"})
