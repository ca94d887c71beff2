"""Builds ftsd's optional C extensions (ftsd/_native.c, ftsd/_lexgrams.c); the metadata is pyproject.toml's.
Without a compiler (or Python's headers) the build goes on without them and ftsd runs their pure-Python twins."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ftsd._native", ["ftsd/_native.c"], optional=True),
                   Extension("ftsd._lexgrams", ["ftsd/_lexgrams.c"], optional=True)])
