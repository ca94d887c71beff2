"""Helpers of the cluster tests: `ftsd serve` nodes as separate processes, and many small users' Maildirs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.pg import free_port
from tests.conftest import to_toml
from tests.maildirs import MailDir

REPO = Path(__file__).resolve().parents[2]
WORDS = ("invoice meeting report budget holiday server backup contract zürich naïve straße kilogram quartz "
         "lantern harbour meadow falcon orbit pepper violet walnut yodel zephyr cobalt dynamo ember fjord").split()
DOMAIN = "example.org"


def make_users(vmail: Path, count: int, seed: int, per_user: int = 4) -> list[str]:
    """`count` users with `per_user` small messages each, in INBOX and Sent."""
    rng = random.Random(seed)
    users = []
    for n in range(count):
        name = f"u{n:03d}"
        box = MailDir(vmail / DOMAIN / name)
        for n in range(per_user):  # INBOX first: every mailbox has its dovecot-uidlist (GUID, UIDVALIDITY)
            deliver_random(box, rng, "INBOX" if n == 0 else "")
        users.append(f"{name}@{DOMAIN}")
    return users


def deliver_random(box: MailDir, rng: random.Random, mailbox: str = "") -> None:
    words = rng.sample(WORDS, 6)
    box.deliver(mailbox or rng.choice(("INBOX", "INBOX", "Sent")), subject=" ".join(words[:2]),
                body=" ".join(words[2:]), sender=f"{rng.choice(WORDS)}@example.net")


def config(tmp: Path, name: str, dsn: str, port: int, **cluster: Any) -> Path:
    data: dict[str, Any] = {
        "mail_location": f"maildir:{tmp}/vmail/%d/%n:INDEX={tmp}/index/%d/%n",
        "userdb": {"driver": "static"},
        "fts": {"workers": 1, "lock_timeout_s": 20.0, "autoindex_timeout_s": 1.0},
        "server": {"listen": f"127.0.0.1:{port}", "socket": "", "state_dir": str(tmp / "state" / name), "auth": False,
                   "job_threads": 2},
        "cluster": {"dsn": dsn, "node_name": name, "heartbeat_s": 0.5, "lease_grace_s": 4.0,
                    "lease_log": str(tmp / "leases.log"), **cluster},
    }
    path = tmp / f"{name}.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path


@dataclass
class Node:
    """One `ftsd serve` process; `lives` records (pid, started, died) of each of its incarnations."""

    name: str
    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    lives: list[list[float]] = field(default_factory=list)

    @classmethod
    def make(cls, tmp: Path, name: str, dsn: str, **cluster: Any) -> Node:
        port = free_port()
        return cls(name, config(tmp, name, dsn, port, **cluster), port, tmp / f"{name}.log")

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as out:
            argv = [sys.executable, "-m", "ftsd", "serve", "--allow-root", "-c", str(self.config)]
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env, cwd=REPO)
        self.lives.append([self.proc.pid, time.time(), float("inf")])

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc and self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()[-2000:]}"
            try:
                if httpx.get(self.url() + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not start: {self.log.read_text()[-2000:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL. The death time recorded is when the signal was sent: the process writes nothing after its
        death, a few microseconds later, and no other node can be granted its leases before PostgreSQL sees its
        sockets close, which is after that death (the time the process is reaped can come well after a grant on a
        loaded machine)."""
        assert self.proc is not None
        self.lives[-1][2] = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.lives[-1][2] = time.time()
            self.proc = None


def wait_idle(client_url: str, timeout: float) -> dict[str, int]:
    """Until the shared queue has nothing queued or running; returns the counts."""
    deadline = time.monotonic() + timeout
    jobs: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            jobs = httpx.get(client_url + "/healthz", timeout=5).json()["jobs"]
            if jobs["queued"] == 0 and jobs["running"] == 0:
                return jobs
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"queue not drained in {timeout}s: {jobs}")
