"""The service token: what a TCP client must present (bearer, or the password of HTTP Basic auth).

On by default (`server.auth`): the token is `server.token` when set, else the first line of `server.token_file`
(default `<state_dir>/token`), which the service creates with a random token, mode 0640, at its first start (or an
installer does, by calling service_token once). Clients on the same host (`ftsd index -q` over TCP) read the same
file and never create it.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from ftsd.errors import ConfigError
from ftsd.settings import Settings

log = logging.getLogger(__name__)

TOKEN_BYTES = 32  # 43 URL-safe characters: fits a Dovecot url=http://user:TOKEN@host/ as it is


def token_path(settings: Settings) -> Path:
    """`server.token_file`, else `<state_dir>/token`."""
    if settings.server.token_file:
        return settings.resolve(settings.server.token_file)
    return settings.resolve(settings.server.state_dir) / "token"


def _read(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"server.token_file {path}: cannot read: {exc}") from exc
    token = text.splitlines()[0].strip() if text else ""
    if not token:
        raise ConfigError(f"server.token_file {path} is empty: put a token in it, or delete it to get a new one")
    return token


def service_token(settings: Settings) -> str:
    """The token TCP requests need, "" when `server.auth` is off; creates the token file when it is missing.
    Raises: ConfigError."""
    if not settings.server.auth:
        return ""
    if settings.server.token:
        return settings.server.token
    path = token_path(settings)
    if path.exists():
        return _read(path)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    except FileExistsError:  # another process made it meanwhile
        return _read(path)
    except OSError as exc:
        raise ConfigError(f"server.token_file {path}: cannot create it ({exc.strerror}); create it with a token "
                          "readable by the service user, set server.token, or set server.auth = false") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o640)  # whatever the umask
        f.write(token + "\n")
    log.info("created the service token in %s (mode 0640): TCP clients send it as a bearer token or as the "
             "Basic-auth password (Dovecot: url=http://dovecot:TOKEN@host:port/solr/dovecot/)", path)
    return token


def client_token(settings: Settings) -> str:
    """The token for a client of this host's service ("" when auth is off or the file is not there yet)."""
    if not settings.server.auth:
        return ""
    if settings.server.token:
        return settings.server.token
    path = token_path(settings)
    return _read(path) if path.exists() else ""
