"""The README's quick start, as CI runs it (root, a fresh clone): `ftsd index -c sample/ftsd.toml -A`, then
`ftsd search -c sample/ftsd.toml -u alice@example.org TEXT invoice`, on a copy of the sample. Silent and exit 0,
and the UIDs printed are those of a brute-force scan of alice's INBOX (tests/reference.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ftsd.query import parse_query
from tests.reference import ReferenceIndex

SAMPLE = Path(__file__).resolve().parents[1] / "sample"


def _ftsd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ftsd", *args], capture_output=True, text=True, timeout=300,
                          check=False)


def test_quick_start_indexes_the_sample_and_answers_as_the_reference(tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    shutil.copytree(SAMPLE, sample, ignore=shutil.ignore_patterns("index"))
    config = str(sample / "ftsd.toml")
    indexed = _ftsd("index", "-c", config, "-A")
    assert (indexed.returncode, indexed.stdout, indexed.stderr) == (0, "", ""), indexed.stderr
    found = _ftsd("search", "-c", config, "-u", "alice@example.org", "TEXT", "invoice")
    assert found.returncode == 0, found.stderr
    expected = ReferenceIndex(sample / "vmail" / "example.org" / "alice").search("INBOX", parse_query("TEXT invoice"))
    assert expected and [int(uid) for uid in found.stdout.split()] == expected
