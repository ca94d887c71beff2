"""The code stays ruff-clean and mypy --strict clean (the house rules of pyproject.toml), checked with the tests."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_clean():
    result = run("ruff", "check", "ftsd", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_clean():
    result = run("mypy", "ftsd", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr
