"""Run as the mail user, like doveadm: identities, dropping root, index file modes, and EACCES explained.

Started as root, bulk commands never touch a Maildir or an index as root: users are grouped by the uid/gid their
mail belongs to (the userdb's uid/gid fields, else `mail_uid`/`mail_gid`), and each group runs in a child process
that gives up root for good (setgroups, setgid, setuid) before its first file access. So every file ftsd creates
belongs to the mail user, and a compromised decoder never runs as root. The index modes (`index_file_mode`, 0600
by default; directories get x where r is set) are enforced through the umask, which Xapian's own file creation
obeys, and existing files with wider modes are narrowed when the index is next written.
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import pwd
import stat
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any

from ftsd.errors import ConfigError, FtsdError, UsageError
from ftsd.settings import Settings
from ftsd.userdb import User, resolve_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, order=True)
class Identity:
    """The uid/gid a user's mail belongs to."""

    uid: int
    gid: int

    def __str__(self) -> str:
        return f"{_user_name(self.uid)}:{_group_name(self.gid)}"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def running_as() -> str:
    """`uid 998 (vmail)`: who this process is, for error messages."""
    uid = os.geteuid()
    return f"uid {uid} ({_user_name(uid)})"


def parse_uid(value: str, origin: str) -> int:
    """A user name or number -> uid. Raises: ConfigError."""
    try:
        return resolve_id(value, "uid")
    except KeyError:
        raise ConfigError(f"{origin}: no system user {value!r} (create it, e.g. `useradd -r vmail`)") from None


def parse_gid(value: str, origin: str) -> int:
    """A group name or number -> gid. Raises: ConfigError."""
    try:
        return resolve_id(value, "gid")
    except KeyError:
        raise ConfigError(f"{origin}: no system group {value!r}") from None


def identity(settings: Settings, user: User) -> Identity | None:
    """The user's uid/gid: userdb fields first, then mail_uid/mail_gid, then the Maildir's owner (what Dovecot
    made); None when nothing says. The userdb's uid/gid names are resolved at lookup (userdb.system_id).
    Raises: ConfigError (a mail_uid/mail_gid that is no system user/group)."""
    if user.uid is not None:
        uid, origin = user.uid, f"userdb entry of {user.name}"
    elif settings.mail_uid:
        uid, origin = parse_uid(settings.mail_uid, "mail_uid"), "mail_uid"
    else:  # what Dovecot made: the Maildir's owner
        try:
            st = user.maildir.stat()
        except OSError:
            return None
        return Identity(st.st_uid, st.st_gid)
    if user.gid is not None:
        gid = user.gid
    elif settings.mail_gid:
        gid = parse_gid(settings.mail_gid, "mail_gid")
    else:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            raise ConfigError(f"{origin}: uid {uid} has no passwd entry: set mail_gid too") from None
    return Identity(uid, gid)


def no_identity_error(user: User) -> str:
    """The one line for a user ftsd cannot run as, naming the fix."""
    return (f"{user.name}: cannot tell which system user owns this mail (no userdb uid, no mail_uid, Maildir "
            f"{user.maildir} unreadable): set mail_uid and mail_gid in ftsd.toml, e.g. mail_uid = \"vmail\"")


def _preload() -> None:
    """Import, while still root, what later work imports lazily: an interpreter installed where the mail user cannot
    read (a pyenv under /root) would otherwise fail in the middle of a run."""
    import concurrent.futures.process  # noqa: F401
    import encodings
    import importlib
    import multiprocessing.popen_fork  # noqa: F401
    import multiprocessing.synchronize  # noqa: F401
    import pkgutil

    import ftsd.decoders.sandbox  # noqa: F401
    import ftsd.indexer.pipeline  # noqa: F401

    for module in pkgutil.iter_modules(encodings.__path__):  # charsets are looked up by name, lazily
        try:
            importlib.import_module(f"encodings.{module.name}")
        except ImportError:
            continue


def drop_privileges(ident: Identity) -> None:
    """Become this uid/gid for good (no supplementary groups, no way back). Raises: UsageError for uid 0."""
    _preload()
    if ident.uid == 0:
        raise UsageError("the mail user is root (uid 0): set mail_uid to the user owning the mail, e.g. vmail")
    os.setgroups([])
    os.setresgid(ident.gid, ident.gid, ident.gid)
    os.setresuid(ident.uid, ident.uid, ident.uid)


def dir_mode(file_mode: int) -> int:
    """0600 -> 0700, 0640 -> 0750: x wherever r is set."""
    return file_mode | ((file_mode & 0o444) >> 2)


def apply_umask(settings: Settings) -> int:
    """Make every file and directory this process creates no wider than the index modes; returns the old umask."""
    return os.umask(0o777 & ~dir_mode(int(settings.index_file_mode, 8)))


def secure_tree(top: Path, settings: Settings, owner: Identity | None = None) -> int:
    """Narrow the modes of ftsd's files under `top` to index_file_mode (and give them to `owner` when root);
    returns how many entries changed. Never follows symlinks."""
    fmode = int(settings.index_file_mode, 8)
    dmode = dir_mode(fmode)
    changed = 0
    for path, st in _walk(top):
        want = dmode if stat.S_ISDIR(st.st_mode) else fmode
        if owner is not None and (st.st_uid, st.st_gid) != (owner.uid, owner.gid):
            os.lchown(path, owner.uid, owner.gid)
            changed += 1
        if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & ~want:
            os.chmod(path, stat.S_IMODE(st.st_mode) & want)
            changed += 1
    return changed


def _walk(top: Path) -> Iterator[tuple[str, os.stat_result]]:
    try:
        st = os.lstat(top)
    except FileNotFoundError:
        return
    yield str(top), st
    if not stat.S_ISDIR(st.st_mode):
        return
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            try:
                yield path, os.lstat(path)
            except FileNotFoundError:
                continue


def prepare_index_root(user: User, ident: Identity, settings: Settings) -> None:
    """As root, before dropping: create the user's index directory (and missing parents below an existing one)
    for the mail user, and hand back index files an earlier root run left behind."""
    missing = []
    path = user.index_dir
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    mode = dir_mode(int(settings.index_file_mode, 8))
    for path in reversed(missing):
        path.mkdir(mode=mode)
        os.chown(path, ident.uid, ident.gid)
    changed = 0
    if user.index_root != user.maildir:  # the INDEX= directory holds only ftsd's files: it must be the user's too
        st = os.lstat(user.index_root)
        if stat.S_ISDIR(st.st_mode) and (st.st_uid, st.st_gid) != (ident.uid, ident.gid):
            os.lchown(user.index_root, ident.uid, ident.gid)
            os.chmod(user.index_root, stat.S_IMODE(st.st_mode) & mode | 0o700)
            changed += 1
    changed += secure_tree(user.index_dir, settings, ident)
    if changed:
        log.warning("%s: %d index files and directories given back to %s with private modes (an earlier run "
                    "left them with another owner or mode)", user.name, changed, ident)


def explain_os_error(exc: OSError, who: str = "") -> str:
    """One line for an OSError: the path, what went wrong, the uid ftsd runs as, and the fix."""
    prefix = f"{who}: " if who else ""
    path = exc.filename or "?"
    if exc.errno not in (errno.EACCES, errno.EPERM):
        return f"{prefix}{path}: {exc.strerror or exc}"
    owner, owner_name = "", "vmail"
    probe = Path(path)
    while True:
        try:
            st = probe.stat()
            owner_name = _user_name(st.st_uid) if st.st_uid else owner_name
            owner = f"{probe} belongs to {_user_name(st.st_uid)}:{_group_name(st.st_gid)} " \
                    f"mode {stat.S_IMODE(st.st_mode):04o}"
            break
        except OSError:
            if probe == probe.parent:
                break
            probe = probe.parent
    me = _user_name(os.geteuid()) if os.geteuid() != 0 else "vmail"
    fix = (f"run ftsd as the user owning this mail (`runuser -u {owner_name} -- ftsd ...`, User={owner_name} in "
           "the units) or as root (it switches to each user's mail uid, like doveadm)")
    if "xapian-indexes" in Path(path).parts:
        top = Path(*Path(path).parts[:Path(path).parts.index("xapian-indexes") + 1])
        if probe in top.parents and not _is_dir(top.parent / "cur"):  # the INDEX= directory itself is not ours
            top = top.parent
        fix = f"run ftsd as root once (it gives the index back to the mail user), or `chown -R {me}: {top}`"
    return f"{prefix}{path}: permission denied for ftsd running as {running_as()}" + \
        (f" ({owner})" if owner else "") + f": {fix}"


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def describe(exc: BaseException, who: str = "") -> str:
    """One line for an error a user's work raised (FtsdError or OSError)."""
    if isinstance(exc, OSError):
        return explain_os_error(exc, who)
    return f"{who}: {exc}" if who and not str(exc).startswith(f"{who}:") else str(exc)


Emit = Callable[[Any], None]


def run_grouped(
    settings: Settings, users: Sequence[User], work: Callable[[list[User], Emit], Any],
    on_event: Callable[[Any], None], on_unrunnable: Callable[[str, str], None], *, prepare: bool = True,
) -> list[Any]:
    """Run `work(users, emit)` as the owner of those users' mail; returns each run's result.

    Not root: one run in this process. Root: one child per (uid, gid) that drops root first; `emit(event)` in
    the child reaches `on_event` here (progress), users without a known identity go to on_unrunnable(user, why).
    prepare=False (read-only commands): the child creates and repairs nothing before dropping root.
    """
    if os.geteuid() != 0:
        return [work(list(users), on_event)]
    groups: dict[Identity, list[User]] = {}
    for user in users:
        try:
            ident = identity(settings, user)
        except ConfigError as exc:
            on_unrunnable(user.name, f"{user.name}: {exc}")
            continue
        if ident is None:
            on_unrunnable(user.name, no_identity_error(user))
        elif ident.uid == 0 and not _owned_by_root(user):
            on_unrunnable(user.name, f"{user.name}: the mail user is root (uid 0) but the Maildir is not root's: "
                          "set mail_uid to the user owning the mail, e.g. vmail")
        else:
            groups.setdefault(ident, []).append(user)
    out = []
    for ident, members in sorted(groups.items()):
        if ident.uid == 0:  # root's own mail (a test set-up): nothing to give up
            out.append(work(members, on_event))
        else:
            out.append(_run_child(settings, ident, members, work, on_event, prepare))
    return out


def _owned_by_root(user: User) -> bool:
    try:
        return user.maildir.stat().st_uid == 0
    except OSError:
        return False


def _run_child(settings: Settings, ident: Identity, users: list[User], work: Callable[[list[User], Emit], Any],
               on_event: Callable[[Any], None], prepare: bool) -> Any:
    reader, writer = Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # child: never returns
        reader.close()
        code = 0
        try:
            for user in users if prepare else ():
                try:
                    prepare_index_root(user, ident, settings)
                except OSError as exc:
                    log.warning("%s", explain_os_error(exc, user.name))
            drop_privileges(ident)
            writer.send(("result", work(users, lambda event: writer.send(("event", event)))))
        except FtsdError as exc:
            writer.send(("error", str(exc)))
            code = 1
        except KeyboardInterrupt:
            code = 130
        except BaseException:  # a bug: show it, but as the child's own failure
            writer.send(("error", traceback.format_exc().strip().splitlines()[-1]))
            code = 1
        finally:
            writer.close()
            os._exit(code)
    writer.close()
    result: Any = None
    try:
        result = _receive(reader, on_event, ident)
    finally:
        reader.close()
        _, status = os.waitpid(pid, 0)
    if result is None:
        raise FtsdError(f"the worker process running as {ident} died ({_status(status)})")
    return result


def _receive(reader: Connection, on_event: Callable[[Any], None], ident: Identity) -> Any:
    while True:
        try:
            kind, payload = reader.recv()
        except EOFError:
            return None
        if kind == "event":
            on_event(payload)
        elif kind == "result":
            return payload
        else:
            raise FtsdError(f"running as {ident}: {payload}")


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def refuse_root_service(allow_root: bool) -> None:
    """`ftsd serve` as root would create root-owned indexes the mail user cannot write. Raises: UsageError."""
    if os.geteuid() == 0 and not allow_root:
        raise UsageError("refusing to run the service as root: run it as the mail user (User=vmail in "
                         "ftsd.service, or `runuser -u vmail -- ftsd serve`), or pass --allow-root")
