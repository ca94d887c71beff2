"""Dovecot's own special-use folders (`namespace { mailbox NAME { special_use = \\Trash } }`), read from
`doveconf -n` when Dovecot is installed, so an admin configures them once: ftsd's [mailboxes] table is the fallback
for what Dovecot does not say (and for hosts without Dovecot)."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import subprocess

from ftsd.settings import Settings

log = logging.getLogger(__name__)

_MAILBOX = re.compile(r'^\s*mailbox\s+(?:"((?:[^"\\]|\\.)*)"|(\S+))\s*\{\s*$')
_SPECIAL_USE = re.compile(r"^\s*special_use\s*=\s*(\S+)")
TIMEOUT_S = 5.0


def parse_special_use(text: str) -> dict[str, str]:
    """mailbox name -> its first special-use flag, from `doveconf -n` output (2.3 and 2.4 print the same blocks)."""
    found: dict[str, str] = {}
    current: str | None = None
    depth_at_mailbox = 0
    depth = 0
    for line in text.splitlines():
        match = _MAILBOX.match(line)
        if match:
            current = match.group(1).replace('\\"', '"') if match.group(1) is not None else match.group(2)
            depth_at_mailbox = depth
            depth += 1
            continue
        if current is not None:
            flag = _SPECIAL_USE.match(line)
            if flag and depth == depth_at_mailbox + 1:
                found.setdefault(current, flag.group(1))
        depth += line.count("{") - line.count("}")
        if current is not None and depth <= depth_at_mailbox:
            current = None
    return found


def dovecot_special_use(settings: Settings) -> dict[str, str]:
    """Dovecot's special-use folders, or {} when doveconf is missing, disabled or fails (then only [mailboxes])."""
    if not settings.doveconf:
        return {}
    command = shutil.which(settings.doveconf)
    if command is None:
        return {}
    argv = [command, *(["-c", str(settings.resolve(settings.dovecot_config))] if settings.dovecot_config else []),
            "-n"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("doveconf: %s", exc)
        return {}
    if result.returncode != 0:
        log.debug("doveconf -n failed: %s", result.stderr.strip()[:300])
        return {}
    return parse_special_use(result.stdout)


def with_dovecot_mailboxes(settings: Settings) -> Settings:
    """Settings whose [mailboxes] table has Dovecot's special-use folders on top of ftsd's own."""
    found = dovecot_special_use(settings)
    if not found:
        return settings
    return dataclasses.replace(settings, mailboxes={**settings.mailboxes, **found})
