"""PgJobQueue: the job queue of ftsd/daemon/jobs.py on PostgreSQL, shared by every node of the cluster.

Same interface and rules as the SQLite JobQueue, so JobRunner takes either: identical queued jobs merge, users
take turns (the least recently served user with queued work goes first, cluster-wide: `ftsd_users.served`), and
never two running jobs of one user. The last rule is not a column but the user's writer lease (lease.py): `claim`
takes the lease before it marks a job running and `finish` records the outcome before it gives the lease back.
A job left `running` by a node that died is found when its user's lease can be taken again: it goes back to
`queued` and runs next, resuming from the index's last commit (indexing is idempotent: documents are replaced by
their unique id, so a job run again never yields a wrong index).

Each node has one queue connection (plain psycopg: every method is one statement or one short transaction).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from typing import Any

from ftsd.cluster.db import NOW, Db, create_schema, user_key
from ftsd.cluster.lease import Leases
from ftsd.daemon.jobs import DONE, FAILED, KEEP_FINISHED_S, KINDS, QUEUED, RUNNING, Job, JobQueue
from ftsd.errors import ClusterError

log = logging.getLogger(__name__)

CANDIDATES = 16  # users looked at per claim: enough to get past users whose lease another node holds
RETRY_S = 60.0  # how long finish() keeps trying through a coordinator restart
_COLUMNS = "id, kind, username, mailboxes, state, created, started, finished, result, error"


def _job(row: Sequence[Any]) -> Job:
    return Job(int(row[0]), row[1], row[2], tuple(json.loads(row[3])), row[4], row[5], row[6], row[7],
               json.loads(row[8]) if row[8] else None, row[9])


def enqueue_job(conn: Any, kind: str, user: str, boxes: list[str]) -> Job:
    """Insert a job, or merge it into an identical queued one (one transaction)."""
    with conn.transaction():
        # enqueues of one user are serialised (two nodes must not both insert the same job)
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (user_key(user, "enqueue"),))
        rows = conn.execute("SELECT id, mailboxes FROM ftsd_jobs WHERE state = %s AND kind = %s AND "
                            "username = %s ORDER BY id", (QUEUED, kind, user)).fetchall()
        for job_id, raw in rows:
            queued = json.loads(raw)
            if queued == boxes:
                break
            if queued and boxes:  # both name mailboxes: one job for the union
                conn.execute("UPDATE ftsd_jobs SET mailboxes = %s WHERE id = %s",
                             (json.dumps(sorted(set(queued) | set(boxes))), job_id))
                break
        else:
            job_id = conn.execute(
                f"INSERT INTO ftsd_jobs (kind, username, mailboxes, state, created) "
                f"VALUES (%s, %s, %s, %s, {NOW}) RETURNING id", (kind, user, json.dumps(boxes), QUEUED),
            ).fetchone()[0]
        row = conn.execute(f"SELECT {_COLUMNS} FROM ftsd_jobs WHERE id = %s", (job_id,)).fetchone()
    return _job(row)



# A subclass only for the type: JobRunner, the API and the metrics are annotated with JobQueue; none of its
# SQLite state is used (its __init__ is not called).
class PgJobQueue(JobQueue):
    """The cluster-wide queue; `leases` is this node's lease holder."""

    def __init__(self, dsn: str, leases: Leases) -> None:  # noqa: B027 - see the class comment
        self.leases = leases
        self.node = leases.node
        self.db = Db(dsn, f"queue {self.node}", on_connect=create_schema)
        self.db.run(lambda conn: None, retry_s=0)  # connect now: a wrong dsn fails the start, not the first job

    def close(self) -> None:
        self.db.close()

    def recover(self) -> int:
        """At start: drop old finished jobs; jobs of nodes whose lease session is gone go back to the queue."""
        def run(conn: Any) -> int:
            conn.execute(f"DELETE FROM ftsd_jobs WHERE state IN (%s, %s) AND finished < {NOW} - %s",
                         (DONE, FAILED, KEEP_FINISHED_S))
            return int(conn.execute(
                "UPDATE ftsd_jobs j SET state = %s, node = NULL, started = NULL WHERE state = %s AND NOT EXISTS "
                "(SELECT 1 FROM ftsd_nodes n JOIN pg_stat_activity a ON a.pid = n.lease_pid "
                "AND a.backend_start = n.lease_started WHERE n.node = j.node)", (QUEUED, RUNNING)).rowcount)
        return self.db.run(run, retry_s=RETRY_S)

    def enqueue(self, kind: str, user: str, mailboxes: Sequence[str] = ()) -> Job:
        """Queue a job, or return the queued job it merges into (same kind and user, same or listed mailboxes)."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        boxes = sorted(set(mailboxes)) if kind == "index" else []
        return self.db.run(lambda conn: enqueue_job(conn, kind, user, boxes), retry_s=5.0)

    def get(self, job_id: int) -> Job | None:
        row = self.db.run(lambda conn: conn.execute(f"SELECT {_COLUMNS} FROM ftsd_jobs WHERE id = %s",
                                                    (job_id,)).fetchone(), retry_s=5.0)
        return _job(row) if row else None

    def claim(self) -> Job | None:
        """The next job to run on this node, marked running, its user's lease held; None when there is none (or
        the coordinator is unreachable: the runner asks again a second later)."""
        try:
            users = self.db.run(self._candidates)
        except ClusterError as exc:
            log.warning("%s", exc)
            return None
        for user in users:
            if not self.leases.try_acquire(user):
                continue
            try:
                job = self.db.run(functools.partial(self._start, user=user))
            except ClusterError as exc:
                log.warning("%s", exc)
                job = None
            if job is not None:
                return job
            self.leases.release(user)  # its job was taken meanwhile (it finished, or was merged)
        return None

    def _candidates(self, conn: Any) -> list[str]:
        """Users with queued work or a job a dead node left running, least recently served first, skipping those
        a live node is serving (a hint: the lease decides)."""
        held = set(self.leases.held())
        rows = conn.execute(
            "WITH live AS (SELECT n.node FROM ftsd_nodes n JOIN pg_stat_activity a ON a.pid = n.lease_pid "
            "AND a.backend_start = n.lease_started), "
            "q AS (SELECT username, min(id) AS first FROM ftsd_jobs WHERE state = %s OR (state = %s AND "
            "(node IS NULL OR node NOT IN (SELECT node FROM live))) GROUP BY username) "
            "SELECT q.username FROM q LEFT JOIN ftsd_users u ON u.username = q.username WHERE NOT EXISTS "
            "(SELECT 1 FROM ftsd_jobs r WHERE r.username = q.username AND r.state = %s "
            "AND r.node IN (SELECT node FROM live)) ORDER BY coalesce(u.served, 0), q.first LIMIT %s",
            (QUEUED, RUNNING, RUNNING, CANDIDATES + len(held)),
        ).fetchall()
        return [r[0] for r in rows if r[0] not in held]

    def _start(self, conn: Any, user: str) -> Job | None:
        """With the user's lease held: requeue what a dead node left running, mark the oldest job running."""
        with conn.transaction():
            taken = conn.execute("UPDATE ftsd_jobs SET state = %s, node = NULL, started = NULL "
                                 "WHERE username = %s AND state = %s", (QUEUED, user, RUNNING)).rowcount
            if taken:
                log.info("cluster: %s: %d job(s) of a node that died queued again", user, taken)
            row = conn.execute(
                f"UPDATE ftsd_jobs SET state = %s, node = %s, started = {NOW} WHERE id = (SELECT id FROM ftsd_jobs "
                f"WHERE username = %s AND state = %s ORDER BY id LIMIT 1 FOR UPDATE) RETURNING {_COLUMNS}",
                (RUNNING, self.node, user, QUEUED)).fetchone()
            if row is not None:
                conn.execute("INSERT INTO ftsd_users (username, served) VALUES (%s, nextval('ftsd_turn')) "
                             "ON CONFLICT (username) DO UPDATE SET served = excluded.served", (user,))
        return _job(row) if row else None

    def may_write(self, user: str) -> bool:
        return self.leases.valid(user)

    def others_waiting(self, user: str) -> bool:
        """True when another user, not being served, has queued work."""
        try:
            row = self.db.run(lambda conn: conn.execute(
                "SELECT 1 FROM ftsd_jobs q WHERE q.state = %s AND q.username != %s AND NOT EXISTS "
                "(SELECT 1 FROM ftsd_jobs r WHERE r.state = %s AND r.username = q.username) LIMIT 1",
                (QUEUED, user, RUNNING)).fetchone())
        except ClusterError:
            return False
        return row is not None

    def finish(self, job_id: int, state: str, result: dict[str, Any] | None = None, error: str | None = None,
               delay_s: float = 0.0) -> None:  # delay_s (a locked index): not kept here, the lock wait spaces tries
        """Record the outcome (`done`, `failed`) or put the job back (`queued`), then release the user's lease.
        Only while this node still owns the job: one taken over meanwhile is left to its new owner."""
        def run(conn: Any) -> str | None:
            if state == QUEUED:
                row = conn.execute("UPDATE ftsd_jobs SET state = %s, node = NULL, started = NULL "
                                   "WHERE id = %s AND node = %s AND state = %s RETURNING username",
                                   (QUEUED, job_id, self.node, RUNNING)).fetchone()
            else:
                row = conn.execute(
                    f"UPDATE ftsd_jobs SET state = %s, finished = {NOW}, result = %s, error = %s "
                    "WHERE id = %s AND node = %s AND state = %s RETURNING username",
                    (state, json.dumps(result) if result is not None else None, error, job_id, self.node, RUNNING),
                ).fetchone()
            if row is None:
                row = conn.execute("SELECT username FROM ftsd_jobs WHERE id = %s", (job_id,)).fetchone()
                log.info("cluster: job %s was taken over meanwhile; its outcome here is dropped", job_id)
            return str(row[0]) if row else None

        try:
            user = self.db.run(run, retry_s=RETRY_S)
        except ClusterError as exc:  # the lease session is gone too by now: the job is taken over later
            log.error("job %d: outcome not recorded: %s", job_id, exc)
            self.leases.lose_all("coordinator unreachable")
            return
        if user is not None:
            self.leases.release(user)

    def counts(self) -> dict[str, int]:
        """Number of jobs per state, cluster-wide."""
        rows = self.db.run(lambda conn: conn.execute("SELECT state, count(*) FROM ftsd_jobs GROUP BY state")
                           .fetchall(), retry_s=2.0)
        return {QUEUED: 0, RUNNING: 0, DONE: 0, FAILED: 0, **{r[0]: int(r[1]) for r in rows}}

    def running_users(self) -> set[str]:
        rows = self.db.run(lambda conn: conn.execute("SELECT DISTINCT username FROM ftsd_jobs WHERE state = %s",
                                                     (RUNNING,)).fetchall(), retry_s=2.0)
        return {r[0] for r in rows}

    def lag_s(self) -> float:
        """Age of the oldest queued job (0 when the queue is empty)."""
        row = self.db.run(lambda conn: conn.execute(
            f"SELECT coalesce({NOW} - min(created), 0) FROM ftsd_jobs WHERE state = %s", (QUEUED,)).fetchone(),
            retry_s=2.0)
        return float(row[0])

    def touch(self, users: Sequence[str]) -> None:
        """Mark users recently active (searched): the periodic rescan looks at them for mail from elsewhere."""
        if users:
            self.db.run(lambda conn: conn.execute(
                f"INSERT INTO ftsd_users (username, active) SELECT u, {NOW} FROM unnest(%s::text[]) u "
                "ON CONFLICT (username) DO UPDATE SET active = excluded.active", (list(users),)), retry_s=2.0)

    def claim_rescan(self, period_s: float) -> bool:
        """True for the one node that runs the periodic rescan of this period (the others skip it)."""
        row = self.db.run(lambda conn: conn.execute(
            f"INSERT INTO ftsd_rescans (id, at) VALUES (1, {NOW}) ON CONFLICT (id) DO UPDATE SET at = excluded.at "
            "WHERE ftsd_rescans.at <= excluded.at - %s RETURNING 1", (period_s * 0.9,)).fetchone(), retry_s=2.0)
        return row is not None

    def active_users(self, window_s: float) -> list[str]:
        rows = self.db.run(lambda conn: conn.execute(
            f"SELECT username FROM ftsd_users WHERE active > {NOW} - %s ORDER BY username", (window_s,)).fetchall(),
            retry_s=2.0)
        return [r[0] for r in rows]

    # unused SQLite helper of the base class
    def _get(self, job_id: int) -> Job | None:
        return self.get(job_id)


