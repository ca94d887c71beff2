"""A mail server's users and permissions for tests: a real `vmail` system user, Maildirs owned by it with
Dovecot's modes (0700 directories, 0600 files), and ftsd run as a real CLI process as root or as another user.

Needs root (useradd, chown); tests using it skip otherwise. The test tree lives under /tmp with mode 0711 (pytest's
own base is 0700: the mail user could not reach it).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAIL_USER = "vmail"
MONITOR_USER = "ftsd-test-monitor"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (creates system users, chowns files)")


def ensure_user(name: str, *, groups: Sequence[str] = ()) -> pwd.struct_passwd:
    """The system user, created if missing (idempotent, and safe when another test creates it meanwhile)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--home-dir", "/nonexistent", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", name], capture_output=True, check=False)
        entry = pwd.getpwnam(name)
    for group in groups:
        if name not in grp.getgrnam(group).gr_mem:
            subprocess.run(["usermod", "-a", "-G", group, name], capture_output=True, check=True)
    return entry


def private_base(prefix: str) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o711)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def give(top: Path, user: str, dir_mode: int = 0o700, file_mode: int = 0o600) -> None:
    """chown -R user:user top, with these modes (what Dovecot's delivery leaves)."""
    entry = pwd.getpwnam(user)
    for dirpath, _, files in os.walk(top):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        os.chmod(dirpath, dir_mode)
        for name in files:
            path = os.path.join(dirpath, name)
            os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(path, file_mode)


def ftsd(*args: str, user: str | None = None, umask: int = 0o022, timeout: float = 120, tmpdir: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    """Run the real `ftsd` command (as root, or as `user` with its own groups), stdout not a terminal; `tmpdir`:
    its TMPDIR."""
    prefix: list[str] = []
    if user is not None:
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(REPO)}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run([*prefix, sys.executable, "-m", "ftsd", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd="/", preexec_fn=lambda: os.umask(umask), check=False)


def files_of(top: Path) -> list[tuple[Path, str, int]]:
    """(path, owner, mode) of every entry under top, top included."""
    out = []
    for dirpath, dirs, files in os.walk(top):
        for path in [Path(dirpath)] + [Path(dirpath) / f for f in files]:
            st = path.lstat()
            out.append((path, pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode)))
        del dirs[:0]
    return out
