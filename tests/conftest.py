"""Shared fixtures: Maildir builders, a config-file factory and the SpamAssassin corpus."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.maildirs import MailDir

REPO = Path(__file__).resolve().parents[1]
CORPUS_ARCHIVE = REPO.parent / "shared" / "corpus" / "spamassassin-ml4h" / "spamassassin-ml4h.maildir.tar.zst"


@pytest.fixture
def vmail(tmp_path: Path) -> Path:
    """The mail root, like /home/vmail: users live in <vmail>/<domain>/<name>."""
    root = tmp_path / "vmail"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture
def maildir(tmp_path: Path) -> MailDir:
    """alice@example.org's Maildir++ (with dovecot-uidlist files) under <tmp>/vmail/example.org/alice."""
    return MailDir(tmp_path / "vmail" / "example.org" / "alice")


def _toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key)
    return key if bare else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, os.PathLike):
        return _toml_value(os.fspath(value))
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: Mapping[str, Any]) -> str:
    """Top-level scalars first, then one [section] per dict value (one level, as ftsd.toml uses)."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    for section, table in data.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{_toml_key(section)}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Path]:
    """make_config(fts={"partial": 2}, log_level="debug") -> path of a fresh <tmp>/ftsd.toml.

    Defaults: mail_location under <tmp>/vmail (index in <tmp>/index), userdb static, the server's socket and
    state_dir inside <tmp>. A dict override is merged into that [section]; anything else sets a top-level key.
    """

    def make(**overrides: Any) -> Path:
        data: dict[str, Any] = {
            "mail_location": f"maildir:{tmp_path}/vmail/%d/%n:INDEX={tmp_path}/index/%d/%n",
            "userdb": {"driver": "static"},
            "server": {"socket": str(tmp_path / "ftsd.sock"), "state_dir": str(tmp_path / "state")},
        }
        for key, value in overrides.items():
            if isinstance(value, Mapping) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = dict(value) if isinstance(value, Mapping) else value
        path = tmp_path / "ftsd.toml"
        path.write_text(to_toml(data), encoding="utf-8")
        return path

    return make


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SpamAssassin corpus as a Maildir (`corpus-a`: INBOX + 5 folders, 6,262 messages, no uidlist).

    $FTSD_CORPUS may name the .tar.zst archive or an already extracted directory (containing corpus-a/, or
    being the Maildir itself). A missing corpus fails the test: it is part of the test data, not optional.
    """
    override = os.environ.get("FTSD_CORPUS")
    source = Path(override) if override else CORPUS_ARCHIVE
    if source.is_dir():
        maildir = source / "corpus-a" if (source / "corpus-a").is_dir() else source
        if not (maildir / "cur").is_dir():
            pytest.fail(f"FTSD_CORPUS={source}: neither a Maildir nor a directory containing corpus-a/")
        return maildir
    if not source.is_file():
        pytest.fail(f"corpus archive not found: {source} (expected ../shared/corpus next to the repository, "
                    "or set FTSD_CORPUS to the .tar.zst or an extracted directory)")
    if shutil.which("zstd") is None:
        pytest.fail("the zstd command is needed to unpack the corpus (apt-get install zstd; .ci/run installs it)")
    dest = tmp_path_factory.mktemp("corpus")
    result = subprocess.run(["tar", "-I", "zstd", "-xf", str(source), "-C", str(dest)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"unpacking {source} failed: {result.stderr.strip()}")
    maildir = dest / "corpus-a"
    if not (maildir / "cur").is_dir():
        pytest.fail(f"{source}: unpacked, but {maildir}/cur is missing")
    return maildir


@pytest.fixture(scope="session")
def corpus_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where corpus_index keeps its config and indexes (`<work>/index/<user>`)."""
    return tmp_path_factory.mktemp("corpus-index")


@pytest.fixture(scope="session")
def corpus_index(corpus_dir: Path, corpus_work: Path) -> tuple[Any, str]:
    """(Settings, user) with the whole corpus indexed once per session (user = the corpus directory name).
    Indexing it takes most of a minute: tests that need an indexed corpus share this one (read-only; copy it
    to change it, as test_corpus.py does)."""
    from ftsd import service
    from ftsd.settings import load_settings

    work = corpus_work
    cfg = work / "ftsd.toml"
    cfg.write_text(to_toml({
        "mail_location": f"maildir:{corpus_dir.parent}/%u:INDEX={work}/index/%u",
        "fts": {"autoindex_exclude": []},
        "server": {"socket": str(work / "ftsd.sock"), "state_dir": str(work / "state")},
    }))
    settings = load_settings(cfg)
    report = service.index_users(settings, [corpus_dir.name])
    assert report.failed == [], report.failed[:5]
    return settings, corpus_dir.name
