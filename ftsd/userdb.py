"""Users and where their mail and index live: mail_location expansion and the userdb drivers.

mail_location is Dovecot's: `maildir:<path>[:INDEX=<path>]` with %u (user), %n (local part), %d (domain) and
`~` (home, from the passwd-file). Drivers: `static` (the users are the directories that match the template, for
`-A`) and `passwd-file` (Dovecot's `user:password:uid:gid:gecos:home:shell:extra` format).
Every user name is validated before it is put into a path: a name can never reach another user's files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ftsd.errors import ConfigError, UnknownUserError
from ftsd.settings import Settings

_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]|^\.|^-|\.\.|^$")


@dataclass(frozen=True, slots=True)
class User:
    """One mail user: the Maildir++ root and the directory holding `xapian-indexes/`."""

    name: str
    maildir: Path
    index_root: Path
    uid: str = ""  # the userdb's uid/gid fields (name or number), "" when it has none
    gid: str = ""

    @property
    def index_dir(self) -> Path:
        return self.index_root / "xapian-indexes"


def validate_user_name(name: str) -> str:
    """The name itself, or UnknownUserError if it could escape its directory (`/`, `..`, NUL, leading dot)."""
    local, _, domain = name.partition("@")
    if _BAD_NAME.search(name) or _BAD_NAME.search(local) or (domain and _BAD_NAME.search(domain)) or len(name) > 255:
        raise UnknownUserError(f"invalid user name {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class MailLocation:
    maildir: str
    index: str | None

    @classmethod
    def parse(cls, value: str) -> MailLocation:
        """Split `maildir:PATH:INDEX=PATH:...`. Raises: ConfigError."""
        kind, _, rest = value.partition(":")
        if kind != "maildir" or not rest:
            raise ConfigError(f"mail_location {value!r}: expected maildir:<path>")
        path, *options = rest.split(":")
        index = None
        for option in options:
            key, _, arg = option.partition("=")
            if key.upper() == "INDEX":
                index = arg
            elif key.upper() not in ("LAYOUT", "CONTROL", "VOLATILEDIR", "DIRNAME", "UTF-8", "INBOX", "FULLDIRNAME"):
                raise ConfigError(f"mail_location {value!r}: unknown option {key}")
            elif key.upper() == "LAYOUT" and arg.lower() != "maildir++":
                raise ConfigError(f"mail_location {value!r}: only LAYOUT=maildir++ is supported")
        return cls(path, index)


def _expand(template: str, user: str, home: str | None, settings: Settings) -> Path:
    local, _, domain = user.partition("@")
    if template.startswith("~"):
        if not home:
            raise UnknownUserError(f"{user}: mail_location uses ~ but the user has no home")
        template = home + template[1:]
    expanded = template.replace("%u", user).replace("%n", local).replace("%d", domain).replace("%%", "%")
    return settings.resolve(expanded)


def _passwd_entries(settings: Settings) -> dict[str, tuple[str | None, str, str]]:
    path = settings.resolve(settings.userdb.args)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"userdb passwd-file {path}: {exc.strerror or exc}") from exc
    users: dict[str, tuple[str | None, str, str]] = {}
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(":") + [""] * 7
        home = fields[5] or None
        uid, gid = fields[2].strip(), fields[3].strip()
        for extra in " ".join(fields[7:]).split():  # userdb_uid=... in the extra fields wins, as in Dovecot
            key, _, value = extra.partition("=")
            if key in ("userdb_uid", "uid"):
                uid = value
            elif key in ("userdb_gid", "gid"):
                gid = value
        users[fields[0]] = (home, uid, gid)
    return users


def _static_users(location: MailLocation, settings: Settings) -> list[str]:
    template = location.maildir
    if "~" in template or not ("%u" in template or "%n" in template):
        raise ConfigError("userdb static can list users (-A) only when mail_location contains %u or %n without ~")
    parts = settings.resolve(template).parts
    glob = Path(*["*" if "%" in p else p for p in parts])
    names = []
    pattern = re.compile(
        "^" + re.escape(str(settings.resolve(template)))
        .replace("%u", "(?P<u>[^/]+)").replace("%n", "(?P<n>[^/]+)").replace("%d", "(?P<d>[^/]+)") + "$"
    )
    for path in sorted(Path(glob.anchor).glob(str(glob.relative_to(glob.anchor)))):
        match = pattern.match(str(path))
        if not match or not path.is_dir():
            continue
        groups = match.groupdict()
        name = groups.get("u") or (groups["n"] + ("@" + groups["d"] if groups.get("d") else ""))
        names.append(name)
    return names


def list_users(settings: Settings) -> list[str]:
    """Every user the userdb knows (for -A), sorted. Raises: ConfigError."""
    if settings.userdb.driver == "passwd-file":
        return sorted(_passwd_entries(settings))
    return _static_users(MailLocation.parse(settings.mail_location), settings)


def lookup_user(settings: Settings, name: str) -> User:
    """The user's Maildir and index locations. Raises: UnknownUserError, ConfigError."""
    validate_user_name(name)
    location = MailLocation.parse(settings.mail_location)
    if "@" not in name and "%d" in location.maildir + (location.index or ""):
        raise UnknownUserError(f"{name}: mail_location uses %d, so the user name needs a domain (user@domain)")
    home, uid, gid = None, "", ""
    if settings.userdb.driver == "passwd-file":
        entries = _passwd_entries(settings)
        if name not in entries:
            raise UnknownUserError(f"{name}: no such user in {settings.userdb.args}")
        home, uid, gid = entries[name]
    maildir = _expand(location.maildir, name, home, settings)
    index_root = _expand(location.index, name, home, settings) if location.index else maildir
    return User(name, maildir, index_root, uid, gid)
