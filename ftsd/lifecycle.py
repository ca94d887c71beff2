"""Indexes whose user is gone: found by `ftsd status --orphans`, removed only by `ftsd prune` (never on its own).

The index directories are found by expanding mail_location's INDEX= template (else the Maildir template) with
wildcards, like the static userdb lists users; a directory holding `xapian-indexes/` whose user the userdb no longer
knows is an orphan. Only ftsd's own `xapian-indexes/` is ever removed (and an INDEX= directory it leaves empty),
never anything of a Maildir.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ftsd.errors import UsageError
from ftsd.settings import Settings
from ftsd.store.maintenance import index_size
from ftsd.userdb import MailLocation, list_users


@dataclass(frozen=True, slots=True)
class Orphan:
    user: str
    index_dir: Path  # the xapian-indexes directory
    bytes: int


def _indexed_users(settings: Settings) -> dict[str, Path]:
    """user name -> its xapian-indexes directory, for every index found on disk."""
    location = MailLocation.parse(settings.mail_location)
    template = location.index or location.maildir
    if "~" in template or not ("%u" in template or "%n" in template):
        raise UsageError("orphans can be found only when mail_location's INDEX= (or Maildir) path contains %u or "
                         "%n and no ~")
    full = str(settings.resolve(template))
    pattern = re.compile("^" + re.escape(full).replace("%u", "(?P<u>[^/]+)").replace("%n", "(?P<n>[^/]+)")
                         .replace("%d", "(?P<d>[^/]+)") + "$")
    glob = Path(*["*" if "%" in p else p for p in Path(full).parts])
    found: dict[str, Path] = {}
    for path in sorted(Path(glob.anchor).glob(str(glob.relative_to(glob.anchor)))):
        match = pattern.match(str(path))
        if not match or not (path / "xapian-indexes").is_dir():
            continue
        groups = match.groupdict()
        name = groups.get("u") or (groups["n"] + ("@" + groups["d"] if groups.get("d") else ""))
        found[name] = path / "xapian-indexes"
    return found


def orphans(settings: Settings) -> list[Orphan]:
    """Indexes on disk whose user the userdb does not list. Raises: ConfigError, UsageError."""
    known = set(list_users(settings))
    return [Orphan(name, path, index_size(path)) for name, path in _indexed_users(settings).items()
            if name not in known]


def prune(orphan: Orphan, settings: Settings) -> None:
    """Remove one orphan's index (and the INDEX= directory if that leaves it empty)."""
    shutil.rmtree(orphan.index_dir)
    if MailLocation.parse(settings.mail_location).index:
        try:
            orphan.index_dir.parent.rmdir()
        except OSError:  # not empty: something else lives there
            pass
