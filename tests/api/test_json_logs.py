"""log_format = "json": `ftsd serve` and the CLI write one JSON object per line, with time, level, logger, message
and the event's own fields (user, mailbox, job, counts, duration_ms); the default stays the plain line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ftsd.maildir import read_uidlist
from ftsd.settings import load_settings
from tests.api.conftest import ALICE, unix_accepts, wait_for, wait_job
from tests.maildirs import MailDir

REPO = Path(__file__).resolve().parents[2]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _records(output: str) -> list[dict[str, Any]]:
    """Every line must be one JSON object with the common fields (nothing else is written: no plain line)."""
    records = []
    for line in output.splitlines():
        record = json.loads(line)
        assert TIME.match(record["time"]) and record["level"] in ("debug", "info", "warning", "error"), line
        assert isinstance(record["logger"], str) and isinstance(record["message"], str), line
        records.append(record)
    return records


def test_serve_writes_json_lines_with_the_fields_of_each_event(config: Callable[..., Path], mail: dict[str, int],
                                                               maildir: MailDir) -> None:
    path = config(log_format="json")
    settings = load_settings(path)
    sock = settings.resolve(settings.server.socket)
    proc = subprocess.Popen([sys.executable, "-m", "ftsd", "serve", "--allow-root", "-c", str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "JOURNAL_STREAM": ""})
    try:
        wait_for(lambda: unix_accepts(sock) or proc.poll() is not None, timeout=20)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://ftsd", timeout=30) as client:
            def healthy() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return proc.poll() is not None

            wait_for(healthy, timeout=20)
            job = client.post(f"/v1/users/{ALICE}/index", json={"mailboxes": ["INBOX"]}).json()["job"]
            assert wait_job(client, job)["state"] == "done"
            found = client.post(f"/v1/users/{ALICE}/search", json={"mailbox": "INBOX", "query": "BODY pay"})
            assert found.json()["uids"] == [mail["invoice"]]
            box = read_uidlist(maildir.root / "dovecot-uidlist")
            assert box is not None
            assert client.get("/solr/dovecot/select", params={"q": "body:pay", "fq": f"+box:{box.guid} +user:{ALICE}",
                                                              "fl": "uid"}).status_code == 200
            late = maildir.deliver(subject="late", body="delivered while ftsd watches")  # the watcher's job
            wait_for(lambda: client.post(f"/v1/users/{ALICE}/search", json={"mailbox": "INBOX", "query": "BODY watches"}
                                         ).json()["uids"] == [late], timeout=30)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    records = _records(output)
    done = [r for r in records if r.get("job") == job and r.get("state") == "done"]
    assert len(done) == 1, records
    assert done[0]["user"] == ALICE and done[0]["kind"] == "index" and done[0]["indexed"] == 2, done
    assert done[0]["logger"] == "ftsd.daemon.jobs" and isinstance(done[0]["duration_ms"], int), done
    mailbox = [r for r in records if r.get("mailbox") == "INBOX" and r.get("user") == ALICE and "indexed" in r]
    assert mailbox and mailbox[0]["indexed"] == 2, records  # the per-mailbox line of the job
    search = [r for r in records if r["message"].startswith("search ")]
    assert search and search[0]["user"] == ALICE and search[0]["outcome"] == "ok", records
    assert isinstance(search[0]["duration_ms"], float)
    # issue 13 point 9: watchfiles' "N changes detected" on every delivery stays below INFO
    assert not [r for r in records if r["logger"].startswith("watchfiles")], records
    solr = [r for r in records if r.get("route") == "select"]
    assert solr and solr[0]["outcome"] == "ok" and "duration_ms" in solr[0], records


def test_cli_json_lines_and_the_plain_default(make_config: Callable[..., Path], maildir: MailDir) -> None:
    maildir.deliver(subject="one", body="text")
    maildir.deliver("Work", subject="two", body="text")

    def run(cfg: Path) -> str:
        done = subprocess.run([sys.executable, "-m", "ftsd", "-c", str(cfg), "-v", "rescan", "-A"], cwd=REPO,
                              capture_output=True, text=True, timeout=120, env={**os.environ, "JOURNAL_STREAM": ""},
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stderr

    records = _records(run(make_config(log_format="json")))
    work = [r for r in records if r.get("mailbox") == "Work"]
    assert len(work) == 1 and work[0]["user"] == "alice@example.org" and work[0]["indexed"] == 1, records
    assert work[0]["message"].startswith("alice@example.org: Work: 1 indexed"), work
    plain = run(make_config()).splitlines()
    assert plain and all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ftsd\[\d+\]: ", line) for line in plain), plain
