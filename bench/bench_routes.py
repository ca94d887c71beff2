#!/usr/bin/env python3
"""Search latency through a real `ftsd serve` (uvicorn, loopback TCP) on an indexed user: the JSON API
(`POST /v1/users/{user}/search`, `BODY word`) and the Solr route exactly as Dovecot's fts_solr sends it
(`GET /solr/dovecot/select?...q={!lucene q.op=AND}body:word&fq=+box:GUID +user:USER`), plus Dovecot's last-UID
lookup (`q=box:GUID AND user:USER`, rows=1, sort=uid desc). Cold: the first search after the server started
(--restarts times per route, a fresh server each); warm: p50/p99 over distinct words after a warm-up.

    .venv/bin/python bench/bench_routes.py CONFIG USER [--mailbox INBOX] [--corpus DIR] [--queries 40]

The index must exist (ftsd index -c CONFIG -u USER); autoindex stays as configured. Words: rare (2-5 messages)
and common ones and in-word substrings of --corpus (default: the user's mailbox itself; a source corpus is
faster to read), drawn by bench/compare_common.py; the routes get disjoint halves of each category, so neither
profits from the other's cached lexicon lookups. Prints one markdown table. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_common import build_queries, med, pct  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """`ftsd serve` on a free loopback port with CONFIG's settings (listen and socket overridden)."""

    def __init__(self, config: Path, work: Path, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.config = work / "serve.toml"
        text = config.read_text()
        self.config.write_text(_override(text, self.port, work))
        self.log = work / "serve.log"
        state = tomllib.loads(text).get("server", {}).get("state_dir", "/var/lib/ftsd")
        self.token = Path(state) / "token"  # TCP clients send the service token
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> httpx.Client:
        with self.log.open("ab") as log:
            cmd = [str(self.root / ".venv/bin/python"), "-m", "ftsd", "serve", "--allow-root", "-c", str(self.config)]
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=self.root)
        client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    token = self.token.read_text().strip() if self.token.exists() else ""
                    client.headers["Authorization"] = f"Bearer {token}"
                    return client
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ftsd serve did not start; see {self.log}")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=60)


def _override(text: str, port: int, work: Path) -> str:
    """CONFIG with [server] listen/socket replaced (TOML: keys of a table must be unique)."""
    out, section = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        if section == "[server]" and stripped.split("=")[0].strip() in ("listen", "socket"):
            continue
        out.append(line)
        if stripped == "[server]":
            out += [f'listen = "127.0.0.1:{port}"', f'socket = "{work}/ftsd.sock"']
    if "[server]" not in text:
        out += ["[server]", f'listen = "127.0.0.1:{port}"', f'socket = "{work}/ftsd.sock"']
    return "\n".join(out) + "\n"


def json_search(client: httpx.Client, user: str, mailbox: str, word: str) -> int:
    r = client.post(f"/v1/users/{user}/search", json={"mailbox": mailbox, "query": f"BODY {word}"})
    r.raise_for_status()
    return len(r.json()["uids"])


def solr_search(client: httpx.Client, user: str, guid: str, word: str, rows: int) -> int:
    params = {"wt": "xml", "fl": "uid,score", "rows": str(rows), "sort": "uid asc",
              "q": "{!lucene q.op=AND}" + f"body:{word}", "fq": f"+box:{guid} +user:{user}"}
    r = client.get(f"/solr/dovecot/select?{urlencode(params)}")
    r.raise_for_status()
    return r.text.count("<doc>")


def last_uid(client: httpx.Client, user: str, guid: str) -> int:
    params = {"wt": "xml", "fl": "uid", "rows": "1", "sort": "uid desc", "q": f"box:{guid} AND user:{user}"}
    r = client.get(f"/solr/dovecot/select?{urlencode(params)}")
    r.raise_for_status()
    return r.text.count("<doc>")


def timed(call: object, *args: object) -> tuple[float, int]:
    start = time.perf_counter()
    hits = call(*args)  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000, hits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("user")
    ap.add_argument("--mailbox", default="INBOX")
    ap.add_argument("--corpus", type=Path, help="where the query words are drawn from (default: the mailbox)")
    ap.add_argument("--queries", type=int, default=40, help="words per category (split between the routes)")
    ap.add_argument("--restarts", type=int, default=3, help="cold first searches per route")
    ap.add_argument("--label", default="", help="a name for this run in the table")
    ap.add_argument("--ftsd-root", type=Path, default=Path(__file__).resolve().parents[1],
                    help="the checkout whose ftsd (and .venv) serves: e.g. main's, for a before/after pair")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ftsd-routes-"))
    server = Server(args.config.resolve(), work, args.ftsd_root.resolve())
    with server as client:
        status = client.get(f"/v1/users/{args.user}/status").json()
    box = next(b for b in status["mailboxes"] if b["mailbox"] == args.mailbox)
    guid, messages, rows = box["guid"], box["indexed"], box["messages"] + 1
    corpus = args.corpus
    if corpus is None:
        raise SystemExit("--corpus is needed (a Maildir to draw words from)")
    queries = build_queries(corpus, args.queries)
    cats = {"rare": queries.rare, "common": queries.common, "substring": queries.substrings}
    warmup = [w + "x" for w in queries.rare[:5]]
    results: dict[str, dict[str, list[float]]] = {"json": {}, "solr": {}}
    hits: dict[str, dict[str, list[int]]] = {"json": {}, "solr": {}}
    cold: dict[str, list[float]] = {"json": [], "solr": [], "last-uid": []}
    for _ in range(args.restarts):
        for route in cold:
            with server as client:
                word = queries.rare[len(cold[route]) % len(queries.rare)]
                calls: dict[str, Callable[[], object]] = {
                    "json": functools.partial(json_search, client, args.user, args.mailbox, word),
                    "solr": functools.partial(solr_search, client, args.user, guid, word, rows),
                    "last-uid": functools.partial(last_uid, client, args.user, guid)}
                call = calls[route]
                cold[route].append(timed(call)[0])
    lastuid: list[float] = []
    with server as client:
        for w in warmup:
            json_search(client, args.user, args.mailbox, w)
            solr_search(client, args.user, guid, w, rows)
        for cat, words in cats.items():
            for i, w in enumerate(words):
                route = "json" if i % 2 == 0 else "solr"
                ms, n = (timed(json_search, client, args.user, args.mailbox, w) if route == "json"
                         else timed(solr_search, client, args.user, guid, w, rows))
                results[route].setdefault(cat, []).append(ms)
                hits[route].setdefault(cat, []).append(n)
        for _ in range(10):
            lastuid.append(timed(last_uid, client, args.user, guid)[0])
    load = os.getloadavg()
    print(f"## bench/bench_routes.py {args.label} (ftsd of {args.ftsd_root})\n")
    print(f"User {args.user}, mailbox {args.mailbox}: {messages:,} indexed messages; a real `ftsd serve` on loopback "
          f"TCP; {args.queries} words per category drawn from {corpus}, alternating between the routes. "
          f"Load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (2 CPUs).\n")
    print("| route | cold first search ms (each restart) | category | warm p50 ms | warm p99 ms | median hits |")
    print("|---|---|---|---:|---:|---:|")
    for route in ("json", "solr"):
        coldtxt = ", ".join(f"{c:.0f}" for c in cold[route])
        for cat in cats:
            t = results[route].get(cat, [])
            print(f"| {route} | {coldtxt} | {cat} | {med(t):.1f} | {pct(t, 99):.1f} | {med(hits[route][cat]):.0f} |")
        allt = [x for v in results[route].values() for x in v]
        print(f"| {route} | | **all** | **{med(allt):.1f}** | **{pct(allt, 99):.1f}** | |")
    print(f"| solr last-UID lookup | {', '.join(f'{c:.0f}' for c in cold['last-uid'])} | rows=1 sort=uid desc "
          f"| {med(lastuid):.1f} | {pct(lastuid, 99):.1f} | 1 |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
