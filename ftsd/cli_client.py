"""Layer 7, beside cli.py: the CLI's client of the running service. `ftsd index -q` / `ftsd optimize -q` queue
jobs there instead of doing the work here; `ftsd check` asks its /healthz (monitor.py) through `connect()`.

Talks to the service over its Unix socket when the socket file exists (the default: no token needed there), else
over TCP (`server.listen`) with the bearer token (`server.token`, or the token file the service made).
With -A the users come from the userdb, one job per user (the service runs them round-robin).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from urllib.parse import quote

import httpx

from ftsd.api.token import client_token
from ftsd.settings import Settings
from ftsd.userdb import list_users

TIMEOUT_S = 30.0


def connect(settings: Settings) -> httpx.Client:
    """An HTTP client of the service: its Unix socket if the file exists, else TCP with the token."""
    path = settings.resolve(settings.server.socket) if settings.server.socket else None
    if path is not None and path.exists():
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://ftsd", timeout=TIMEOUT_S)
    if not settings.server.listen:
        raise httpx.ConnectError(f"no socket at {path} and server.listen is empty")
    token = client_token(settings)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"http://{settings.server.listen}", headers=headers, timeout=TIMEOUT_S)


def enqueue(settings: Settings, kind: str, users: Sequence[str], all_users: bool = False,
            mailboxes: Sequence[str] = (), quiet: bool = False) -> int:
    """Queue a `kind` job (index, rescan, optimize) per user; print the job ids. Exit code: 0, or 1 if the service
    is not running or refused a job. Raises: ConfigError (from the userdb, for -A)."""
    names = list_users(settings) if all_users else list(users)
    failed = 0
    try:
        with connect(settings) as client:
            for name in names:
                body = {"mailboxes": list(mailboxes)} if kind == "index" and mailboxes else None
                response = client.post(f"/v1/users/{quote(name, safe='@')}/{kind}", json=body)
                if response.status_code == 202:
                    if not quiet:  # cron: silent on success
                        print(f"{name}: {kind} job {response.json()['job']} queued")
                    continue
                failed += 1
                print(f"ftsd: {name}: {kind} refused: {_message(response)}", file=sys.stderr)
    except httpx.TransportError as exc:
        where = settings.server.socket or settings.server.listen
        print(f"ftsd: the ftsd service is not running or not reachable ({where}: {exc}); start it with "
              "`ftsd serve` (systemctl start ftsd), or run the command without -q", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _message(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
