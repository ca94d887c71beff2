"""Authentication by default: a TCP client without the service token reads and writes nothing (search, Solr select
and update, status, /docs, /metrics); the token file is made at the first start; Basic auth works as Dovecot's
fts_solr sends it; the Unix socket needs no token; `server.auth = false` and `server.metrics_auth = false`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ftsd.api.token import client_token, token_path
from ftsd.cli import main
from ftsd.settings import load_settings
from tests.api.conftest import ALICE, start_server

BOX = "d43fe7122fb4056bee46000083ecc375"
FORGED = (f'<add><doc><field name="uid">1</field><field name="box">{BOX}</field><field name="user">{ALICE}</field>'
          f'<field name="id">1/{BOX}/{ALICE}</field><field name="body">injectedword</field></doc></add>')
SELECT = {"q": "body:injectedword", "fq": f"user:{ALICE}", "wt": "json", "fl": "uid"}


def test_tcp_needs_the_token_by_default(config: Callable[..., Path], mail: dict[str, int]) -> None:
    path = config()
    settings = load_settings(path)
    assert not token_path(settings).exists()
    running = start_server(path)
    try:
        made = token_path(settings)
        assert made.stat().st_mode & 0o777 == 0o640
        token = made.read_text().strip()
        assert len(token) >= 40 and client_token(settings) == token
        with running.tcp(token="") as anonymous:
            calls: list[tuple[str, str, dict[str, Any]]] = [
                ("POST", f"/v1/users/{ALICE}/search", {"json": {"query": "TEXT hello"}}),
                ("GET", f"/v1/users/{ALICE}/status", {}),
                ("POST", f"/v1/users/{ALICE}/index", {}),
                ("GET", "/solr/dovecot/select", {"params": SELECT}),
                ("POST", "/solr/dovecot/update", {"content": FORGED}),
                ("GET", "/docs", {}), ("GET", "/openapi.json", {}), ("GET", "/metrics", {}),
            ]
            for method, url, kwargs in calls:
                reply = anonymous.request(method, url, **kwargs)
                assert reply.status_code == 401, (url, reply.text)
                assert reply.json()["error"]["code"] == "unauthorized"
            assert anonymous.get("/healthz").status_code == 200
            # Dovecot's fts_solr: url=http://dovecot:TOKEN@127.0.0.1:8984/solr/dovecot/ -> HTTP Basic
            assert anonymous.get("/solr/dovecot/select", params=SELECT, auth=("dovecot", token)).status_code == 200
            assert anonymous.get("/solr/dovecot/select", params=SELECT, auth=("dovecot", "x")).status_code == 401
        with running.tcp() as client:  # the bearer token
            assert client.get("/solr/dovecot/select", params=SELECT).json()["response"]["numFound"] == 0
            assert client.get("/docs").status_code == 200
        with running.uds() as local:  # the socket's file mode guards it
            assert local.get("/metrics").status_code == 200
    finally:
        running.stop()
    # the token file is kept: the next start uses the same token (Dovecot's configuration stays valid)
    again = start_server(path)
    try:
        assert again.token == token
        with again.tcp() as client:
            assert client.get("/metrics").status_code == 200
    finally:
        again.stop()


def test_cli_queues_over_tcp_with_the_token_file(config: Callable[..., Path], mail: dict[str, int],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    running = start_server(config())
    try:
        no_socket = config(server={"socket": "", "listen": f"127.0.0.1:{running.port}"})
        assert main(["index", "-q", "-v", "-u", ALICE, "-c", str(no_socket)]) == 0
        assert f"{ALICE}: index job 1 queued" in capsys.readouterr().out
        token_path(running.settings).write_text("wrong\n")
        assert main(["index", "-q", "-u", ALICE, "-c", str(no_socket)]) == 1
        assert "401 unauthorized" in capsys.readouterr().err
    finally:
        running.stop()


def test_auth_off_and_open_metrics(config: Callable[..., Path], mail: dict[str, int]) -> None:
    running = start_server(config(server={"metrics_auth": False}))
    try:
        with running.tcp(token="") as anonymous:
            assert anonymous.get("/metrics").status_code == 200
            assert anonymous.post(f"/v1/users/{ALICE}/search", json={"query": "ALL"}).status_code == 401
    finally:
        running.stop()
    path = config(server={"auth": False})
    running = start_server(path)
    try:
        with running.tcp(token="") as anonymous:
            assert anonymous.post(f"/v1/users/{ALICE}/search", json={"query": "ALL"}).status_code == 200
    finally:
        running.stop()
