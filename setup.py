"""Builds ftsd's optional C extension (ftsd/_native.c); the metadata is pyproject.toml's. Without a compiler (or
Python's headers) the build goes on without it and ftsd runs its pure-Python twins (same terms, slower)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ftsd._native", ["ftsd/_native.c"], optional=True)])
