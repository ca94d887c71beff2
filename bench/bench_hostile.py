"""Hostile requests against `ftsd serve` (issue 12's probes): prints what each one costs the service.

Starts `ftsd serve` as a child process (open files limited to 1,024, as systemd's default) over a small generated
Maildir (alice: 3 mailboxes x --messages messages), then, one at a time:

    update-50mb   a 50 MB <delete><query> and 50 MB of <add> documents: status, growth of the server's peak RSS
    imap-5400     an IMAP SEARCH of 5,400 AND-ed TEXT keys over every mailbox (54 KB): status, seconds
    solr-or-10k   a Solr select with 10,000 OR-ed body terms: status, seconds
    tilde-32k     `body:~0~0...x` of 32K characters: parse time in-process, and the select's status and seconds
    idle-1100     1,100 idle connections (half of them with half a request head) on loopback TCP, then /healthz
                  and a search on a new connection: seconds; how many idle ones the server has closed after
                  server.timeout_header_s; bytes the service log grew by

    python bench/bench_hostile.py [--messages 200] [--limits-off] [--probes imap-5400,idle-1100] [--timeout 120]

With PYTHONPATH pointing at an older checkout it measures that one (no token there; `update-50mb` took 5.9 GB
before the limits: leave it out of such runs).

`--limits-off` raises the query cost limits out of reach (the time budget stays) to show that a costly query is
then stopped by limits.search_time_s instead. Not collected by pytest; loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: an older checkout may come first

from ftsd.settings import load_settings  # noqa: E402
from ftsd.solr.lucene import parse_lucene  # noqa: E402
from tests.conftest import to_toml  # noqa: E402
from tests.maildirs import MailDir  # noqa: E402

ALICE = "alice@example.org"
MB = 1 << 20
WORDS = "invoice meeting budget quarterly report hello world lunch travel contract".split()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _setup(root: Path, messages: int, limits_off: bool) -> tuple[Path, int]:
    alice = MailDir(root / "vmail" / "example.org" / "alice")
    for box in ("INBOX", "Archive", "Sent"):
        for n in range(messages):
            alice.deliver(box, subject=f"{WORDS[n % 10]} {n}", body=" ".join(WORDS[(n + k) % 10] for k in range(40)))
    port = _free_port()
    config: dict[str, Any] = {
        "mail_location": f"maildir:{root}/vmail/%d/%n:INDEX={root}/index/%d/%n",
        "server": {"listen": f"127.0.0.1:{port}", "socket": str(root / "s.sock"), "state_dir": str(root / "state")},
        "fts": {"workers": 1},
    }
    if limits_off:
        config["limits"] = {"query_keys": 100_000, "query_or_width": 100_000, "query_bytes": 10_000_000}
    path = root / "ftsd.toml"
    path.write_text(to_toml(config))
    return path, port


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024


def _stream(head: bytes, filler: bytes, total: int, tail: bytes) -> Iterator[bytes]:
    yield head
    for _ in range(total // len(filler)):
        yield filler
    yield tail


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200, help="messages per mailbox (3 mailboxes)")
    parser.add_argument("--limits-off", action="store_true", help="query cost limits out of reach")
    parser.add_argument("--probes", default="update-50mb,imap-5400,solr-or-10k,tilde-32k,idle-1100")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a probe request may take")
    args = parser.parse_args()
    probes = set(args.probes.split(","))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard) if hard != resource.RLIM_INFINITY else 4096, hard))

    with tempfile.TemporaryDirectory(prefix="ftsd-hostile-") as tmp:
        root = Path(tmp)
        config, port = _setup(root, args.messages, args.limits_off)
        settings = load_settings(config)
        log = root / "serve.log"

        def nofile() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

        with log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "ftsd", "serve", "--allow-root", "-c", str(config)],
                                    stdout=out, stderr=subprocess.STDOUT, preexec_fn=nofile)
        uds = httpx.Client(transport=httpx.HTTPTransport(uds=str(root / "s.sock")), base_url="http://ftsd",
                           timeout=args.timeout)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if uds.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"the server did not start:\n{log.read_text()}")
                time.sleep(0.2)
            # index first, so searches hit the index
            uds.post(f"/v1/users/{ALICE}/search", json={"query": "TEXT hello", "mailboxes": ["*"]})
            print(f"server pid {proc.pid}, {3 * args.messages} messages, limits {'off' if args.limits_off else 'on'}")

            if "update-50mb" in probes:
                _update(uds, proc.pid)
            if "imap-5400" in probes:
                many = " ".join(f"TEXT k{i}" for i in range(5400))
                r, t = _attempt(lambda: uds.post(f"/v1/users/{ALICE}/search",
                                                 json={"query": many, "mailboxes": ["*"]}))
                print(f"imap-5400     {r} in {t:.2f} s")
            if "solr-or-10k" in probes:
                wide = " OR ".join(f"body:w{i}" for i in range(10_000))
                r, t = _attempt(lambda: uds.post("/solr/dovecot/select", data={"q": wide, "fq": f"user:{ALICE}"}))
                print(f"solr-or-10k   {r} in {t:.2f} s")
            if "tilde-32k" in probes:
                tilde = "body:" + "~0" * 16_000 + "x"
                _, parse_s = _timed(lambda: parse_lucene(tilde))
                r, t = _attempt(lambda: uds.post("/solr/dovecot/select", data={"q": tilde, "fq": f"user:{ALICE}"}))
                print(f"tilde-32k     parse {1000 * parse_s:.1f} ms; select {r} in {t:.2f} s")
            if "idle-1100" in probes:
                _idle(settings, port, log, args.timeout)
        finally:
            uds.close()
            proc.terminate()
            proc.wait(timeout=60)


def _attempt(fn: Any) -> tuple[str, float]:
    """(status and the start of the answer, or the error) and seconds."""
    started = time.perf_counter()
    try:
        reply = fn()
        text = reply.text
        what = f"{reply.status_code} {text[text.find('msg'):][:120] if text.startswith('<') else text[:120]}"
    except httpx.HTTPError as exc:
        what = f"no answer ({type(exc).__name__})"
    return " ".join(what.split()), time.perf_counter() - started


def _update(uds: httpx.Client, pid: int) -> None:
    base = _peak_rss_mb(pid)
    url = "/solr/dovecot/update"
    query = _stream(b"<delete><query>user:" + ALICE.encode() + b" AND body:", b"x" * MB, 50 * MB,
                    b"</query></delete>")
    r1, t1 = _attempt(lambda: uds.post(url, content=query))
    doc = (f'<doc><field name="uid">1</field><field name="box">{"a" * 32}</field><field name="user">{ALICE}</field>'
           '<field name="body">' + "y" * (MB - 200) + "</field></doc>").encode()
    r2, t2 = _attempt(lambda: uds.post(url, content=_stream(b"<add>", doc, 50 * MB, b"</add>")))
    print(f"update-50mb   <delete><query>: {r1} in {t1:.2f} s\n"
          f"              <add> x 50: {r2} in {t2:.2f} s\n"
          f"              server peak RSS {base:.0f} -> {_peak_rss_mb(pid):.0f} MB")


def _idle(settings: Any, port: int, log: Path, timeout: float) -> None:
    log_before = log.stat().st_size
    flood: list[socket.socket] = []
    for i in range(1100):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: ftsd\r\n")
        flood.append(sock)
    headers = {}
    try:
        from ftsd.api.token import client_token  # absent before authentication by default

        headers = {"Authorization": f"Bearer {client_token(settings)}"}
    except ImportError:
        pass
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=min(timeout, 30), headers=headers) as tcp:
        h, th = _attempt(lambda: tcp.get("/healthz"))
        s, ts = _attempt(lambda: tcp.post(f"/v1/users/{ALICE}/search", json={"query": "TEXT hello"}))
    wait_s = getattr(settings.server, "timeout_header_s", 10.0) + 1
    time.sleep(wait_s)
    closed = 0
    for sock in flood:
        sock.settimeout(0.01)
        try:
            closed += sock.recv(1024) == b""
        except ConnectionResetError:
            closed += 1
        except TimeoutError:
            pass
        sock.close()
    grown = log.stat().st_size - log_before
    print(f"idle-1100     /healthz: {h[:60]} in {th:.2f} s\n"
          f"              search: {s[:60]} in {ts:.2f} s\n"
          f"              {closed} of 1100 idle connections closed by the server after {wait_s:g} s; "
          f"log +{grown} bytes")


if __name__ == "__main__":
    main()
