"""fts_solr updates in cluster mode: Dovecot's pushed documents are written under the user's writer lease.

The update session of ftsd/solr/ writes a user's batch through one writer; here that write first takes the
user's lease (waiting up to fts.lock_timeout_s while a job elsewhere holds it), so the one-writer rule holds for
every path into the index. A lease still busy after that is a 503 with Retry-After: Dovecot sends it again.
"""

from __future__ import annotations

import time

from ftsd.cluster.lease import Leases
from ftsd.errors import IndexLockedError
from ftsd.runtime import Runtime
from ftsd.settings import Settings
from ftsd.solr.update import UpdateOp, UpdateSession
from ftsd.userdb import User

POLL_S = 0.05


class LeasedUpdateSession(UpdateSession):
    def __init__(self, settings: Settings, leases: Leases, runtime: Runtime | None = None) -> None:
        super().__init__(settings, runtime)
        self.leases = leases

    def _apply(self, user: User, ops: list[UpdateOp]) -> None:
        timeout = self.settings.fts.lock_timeout_s
        deadline = time.monotonic() + timeout
        while not self.leases.try_acquire(user.name):
            if time.monotonic() >= deadline:
                raise IndexLockedError(f"{user.name}: index written by another node for {timeout:g}s")
            time.sleep(POLL_S)
        try:
            super()._apply(user, ops)
        finally:
            self.leases.release(user.name)
