"""Load benchmark of the HTTP API: searches while a bulk index job runs, and after it.

Starts `ftsd serve` (a real process, loopback TCP + Unix socket) over one user's Maildir with a fresh index,
queues an index job for the user, and runs N concurrent clients doing single-word searches (words drawn from
the corpus, each in a random mailbox) for a bounded time while the job runs; then the same load once it is done.
Prints search p50/p99 in ms, requests/s and errors for both phases, and the job's throughput.

    mkdir -p /tmp/corpus && tar -I zstd -xf ../shared/corpus/spamassassin-ml4h/spamassassin-ml4h.maildir.tar.zst \
        -C /tmp/corpus
    python bench/bench_load.py /tmp/corpus/corpus-a --seconds 30 --clients 8

Not collected by pytest. The Maildir is only read.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

_WORD = re.compile(rb"\b[a-zA-Z]{4,12}\b")


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self) -> str:
        n = len(self.latencies)
        if not n:
            return f"{self.name}: no searches completed; errors {self.errors}"
        ms = sorted(x * 1000 for x in self.latencies)
        p99 = ms[min(n - 1, int(n * 0.99))]
        return (f"{self.name}: {n} searches in {self.seconds:.1f}s = {n / self.seconds:.1f} req/s; "
                f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms; "
                f"errors {sum(self.errors.values())} {self.errors or ''}")


def corpus_words(maildir: Path, count: int, rng: random.Random) -> list[str]:
    """`count` distinct words of 4-12 letters from the bodies of randomly chosen messages."""
    files = [p for sub in ("cur", "new") for p in maildir.glob(f"**/{sub}/*") if p.is_file()]
    words: set[str] = set()
    for path in rng.sample(files, min(len(files), 400)):
        body = path.read_bytes().partition(b"\n\n")[2][:20_000]
        words.update(w.decode().lower() for w in _WORD.findall(body))
    return rng.sample(sorted(words), min(count, len(words)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(work: Path, maildir: Path, port: int, workers: int, worker_nice: int) -> Path:
    # Two users share the (read-only) Maildir through symlinks: the searched one, and "bulk" for the
    # other-user scenario.
    (work / "mail").mkdir()
    for name in (maildir.name, "bulk"):
        (work / "mail" / name).symlink_to(maildir)
    (work / "passwd").write_text(f"{maildir.name}:x:1000:1000::{maildir}::\nbulk:x:1000:1000::{maildir}::\n")
    config = work / "ftsd.toml"
    config.write_text(
        f'mail_location = "maildir:{work}/mail/%u:INDEX={work}/idx/%u"\n'
        'log_level = "warning"\n'
        f'[userdb]\ndriver = "passwd-file"\nargs = "{work}/passwd"\n'
        f"[fts]\nworkers = {workers}\nworker_nice = {worker_nice}\n"
        f'[server]\nlisten = "127.0.0.1:{port}"\nsocket = "{work}/s.sock"\nstate_dir = "{work}/state"\n'
    )
    return config


def client_loop(base: str, user: str, mailboxes: list[str], words: list[str], phase: Phase, stop: threading.Event,
                seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=120) as client:
        while not stop.is_set():
            body = {"mailbox": rng.choice(mailboxes), "query": f"TEXT {rng.choice(words)}"}
            start = time.perf_counter()
            try:
                r = client.post(f"/v1/users/{user}/search", json=body)
                elapsed = time.perf_counter() - start
                key = None if r.status_code == 200 else str(r.status_code)
            except httpx.HTTPError as exc:
                elapsed, key = time.perf_counter() - start, type(exc).__name__
            with phase.lock:
                if key is None:
                    phase.latencies.append(elapsed)
                else:
                    phase.errors[key] = phase.errors.get(key, 0) + 1


def run_phase(phase: Phase, args: argparse.Namespace, base: str, mailboxes: list[str], words: list[str],
              until: Any = None) -> None:
    """Load for args.seconds, or until `until()` is true (checked every 0.2 s), whichever comes first."""
    stop = threading.Event()
    threads = [threading.Thread(target=client_loop, args=(base, args.user, mailboxes, words, phase, stop, n))
               for n in range(args.clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    while time.perf_counter() - start < args.seconds and not (until and until()):
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    phase.seconds = time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("maildir", type=Path, help="the user's Maildir (its directory name is the user name)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time bound of each phase")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="fts.workers of the service (0 = CPU cores)")
    parser.add_argument("--worker-nice", type=int, default=10, help="fts.worker_nice of the service")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", choices=("other-user", "cold"), default="other-user",
                        help="other-user: the searched user is indexed, a bulk job indexes another user's copy "
                             "(the nightly `index -A` case); cold: the bulk job indexes the searched user itself, "
                             "so searches must read not-yet-indexed mail from disk")
    args = parser.parse_args()
    maildir = args.maildir.resolve()
    args.user = maildir.name
    rng = random.Random(args.seed)
    words = corpus_words(maildir, 300, rng)
    work = Path(tempfile.mkdtemp(dir="/tmp", prefix="ftsdbench"))
    port = free_port()
    config = write_config(work, maildir, port, args.workers, args.worker_nice)
    base = f"http://127.0.0.1:{port}"
    if args.scenario == "other-user":
        subprocess.run([sys.executable, "-m", "ftsd", "index", "-c", str(config), "-u", args.user], check=True,
                       stdout=subprocess.DEVNULL)
    log = (work / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "ftsd", "serve", "--allow-root", "-c", str(config)],
                            stdout=log, stderr=log)
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"ftsd serve did not start; see {work}/serve.log") from None
                    time.sleep(0.1)
            status = client.get(f"/v1/users/{args.user}/status").json()
            mailboxes = [row["mailbox"] for row in status["mailboxes"]]
            total = sum(row["messages"] for row in status["mailboxes"])
            print(f"{args.user}: {total} messages in {len(mailboxes)} mailboxes; {len(words)} query words; "
                  f"{args.clients} clients; index in {work}/idx")
            bulk_user = "bulk" if args.scenario == "other-user" else args.user
            print(f"scenario {args.scenario}: bulk index job for {bulk_user}, searches on {args.user}")
            job = client.post(f"/v1/users/{bulk_user}/index", json={"mailboxes": mailboxes}).json()["job"]
            t0 = time.perf_counter()

            def job_state() -> dict[str, Any]:
                info: dict[str, Any] = client.get(f"/v1/jobs/{job}").json()
                return info

            during = Phase("during indexing")
            run_phase(during, args, base, mailboxes, words, until=lambda: job_state()["state"] in ("done", "failed"))
            while (info := job_state())["state"] not in ("done", "failed"):
                time.sleep(0.5)
            elapsed = time.perf_counter() - t0
            result = info.get("result") or {}
            print(f"index job {job}: {info['state']}, {result.get('indexed')} indexed, {result.get('failed')} failed "
                  f"in {elapsed:.1f}s wall ({(result.get('indexed') or 0) / elapsed:.0f} msg/s under load); "
                  f"job summary {json.dumps({k: result.get(k) for k in ('seconds', 'skipped', 'removed')})}")
            after = Phase("after indexing")
            run_phase(after, args, base, mailboxes, words)
            size = client.get(f"/v1/users/{args.user}/status").json()["index_bytes"]
            print(during.report())
            print(after.report())
            print(f"index size {size / 1e6:.1f} MB")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
