"""fts.writer = "dovecot" (the fts_solr set-up): Dovecot is the only writer. No watcher, no own indexing; status,
check and /metrics count what Dovecot sends, per Solr route."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from ftsd.cli import main
from ftsd.maildir import read_uidlist
from tests.api.conftest import ALICE, start_server
from tests.maildirs import MailDir


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_dovecot_is_the_only_writer(config: Callable[..., Path], maildir: MailDir, mail: dict[str, int],
                                    capsys) -> None:
    path = config(fts={"writer": "dovecot"})
    running = start_server(path)
    try:
        with running.uds() as client:
            assert client.get("/healthz").json()["watcher"] == "off"
            maildir.deliver(subject="new mail", body="delivered while ftsd watches nothing")
            time.sleep(1.0)
            assert client.get("/healthz").json()["jobs"] == {"queued": 0, "running": 0, "done": 0, "failed": 0}
            box = read_uidlist(maildir.root / "dovecot-uidlist")
            assert box is not None
            doc = (f'<add><doc><field name="uid">{mail["invoice"]}</field><field name="box">{box.guid}</field>'
                   f'<field name="user">{ALICE}</field><field name="id">{mail["invoice"]}/{box.guid}/{ALICE}</field>'
                   '<field name="body">hello world, please pay</field></doc></add>')
            assert client.post("/solr/dovecot/update", content=doc,
                               headers={"Content-Type": "text/xml"}).status_code == 200
            select = client.get("/solr/dovecot/select", params={
                "q": "{!lucene q.op=AND}body:pay", "fq": f"+box:{box.guid} +user:{ALICE}", "fl": "uid,score",
                "rows": "10", "sort": "uid asc", "wt": "xml"})
            assert select.status_code == 200 and f'<long name="uid">{mail["invoice"]}</long>' in select.text
            metrics = client.get("/metrics").text
        assert _metric(metrics, 'ftsd_solr_requests_total{outcome="ok",route="update"}') == 1
        assert _metric(metrics, 'ftsd_solr_requests_total{outcome="ok",route="select"}') == 1
        assert _metric(metrics, 'ftsd_solr_documents_total{op="add"}') == 1
        assert _metric(metrics, "ftsd_messages_indexed_total") == 1
        assert _metric(metrics, 'ftsd_solr_seconds_count{route="update"}') == 1
    finally:
        running.stop()
    capsys.readouterr()
    assert main(["-c", str(path), "status", "-u", ALICE]) == 0
    inbox = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("INBOX"))
    assert inbox.split()[1:4] == ["3", "1", str(mail["invoice"])]  # messages, indexed (by Dovecot), last UID
    assert main(["-c", str(path), "check", "--no-service", "-u", ALICE, "-w", "1e9", "-c", "1e10"]) == 0
    assert "unindexed=3" in capsys.readouterr().out  # lunch, the new mail, the Archive report
    assert main(["-c", str(path), "index", "-A"]) == 2
    assert "doveadm index -A" in capsys.readouterr().err
