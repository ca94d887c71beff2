"""static userdb: every name is a user; `-A` lists the directories that match the mail_location template."""

from __future__ import annotations

import re
from pathlib import Path

from ftsd.errors import ConfigError
from ftsd.userdb.base import MailLocation, Userdb, UserRecord


class StaticUserdb(Userdb):
    where = "the static userdb"

    def _list(self) -> list[str]:
        template = MailLocation.parse(self.settings.mail_location).maildir
        if "~" in template or not ("%u" in template or "%n" in template):
            raise ConfigError("userdb static can list users (-A) only when mail_location contains %u or %n "
                              "without ~")
        resolved = str(self.settings.resolve(template))
        glob = Path(*["*" if "%" in p else p for p in Path(resolved).parts])
        pattern = re.compile("^" + re.escape(resolved).replace("%u", "(?P<u>[^/]+)").replace("%n", "(?P<n>[^/]+)")
                             .replace("%d", "(?P<d>[^/]+)") + "$")
        names = []
        for path in Path(glob.anchor).glob(str(glob.relative_to(glob.anchor))):
            match = pattern.match(str(path))
            if not match or not path.is_dir():
                continue
            groups = match.groupdict()
            names.append(groups.get("u") or (groups["n"] + ("@" + groups["d"] if groups.get("d") else "")))
        return names

    def _fetch(self, name: str) -> UserRecord | None:
        return UserRecord(name)
