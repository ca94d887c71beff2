"""Operations on the cluster from any machine with the config (no node needs to run here): `ftsd cluster status`
and `ftsd index|optimize -q` straight into the shared queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftsd.cluster.db import NOW, Db, create_schema
from ftsd.cluster.queue import enqueue_job
from ftsd.daemon.jobs import DONE, FAILED, QUEUED, RUNNING
from ftsd.errors import ConfigError
from ftsd.settings import Settings

_NODES = f"""
SELECT n.node, {NOW} - n.started, {NOW} - n.heartbeat, a.pid IS NOT NULL,
       (SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.pid = a.pid),
       (SELECT array_agg(j.username ORDER BY j.username) FROM ftsd_jobs j WHERE j.node = n.node AND j.state = %s)
FROM ftsd_nodes n LEFT JOIN pg_stat_activity a ON a.pid = n.lease_pid AND a.backend_start = n.lease_started
ORDER BY n.node
"""


def _db(settings: Settings) -> Db:
    if not settings.cluster.dsn:
        raise ConfigError("cluster.dsn is not set: this ftsd runs as a single node")
    return Db(settings.cluster.dsn, "admin", on_connect=create_schema)


def check_coordinator(settings: Settings) -> None:
    """Connect once (and create the tables). Raises: ClusterError, ConfigError."""
    db = _db(settings)
    try:
        db.run(lambda conn: None)
    finally:
        db.close()


def cluster_status(settings: Settings) -> dict[str, Any]:
    """Nodes (alive = their lease session exists; heartbeat age; leases; users being written), queue depth per
    state and lag (age of the oldest queued job). Raises: ClusterError."""
    db = _db(settings)
    try:
        def read(conn: Any) -> dict[str, Any]:
            nodes = [{"node": r[0], "up_s": round(r[1], 1), "heartbeat_age_s": round(r[2], 1), "alive": r[3],
                      "leases": int(r[4]), "writing": list(r[5] or [])}
                     for r in conn.execute(_NODES, (RUNNING,)).fetchall()]
            counts = dict(conn.execute("SELECT state, count(*) FROM ftsd_jobs GROUP BY state").fetchall())
            lag = conn.execute(f"SELECT coalesce({NOW} - min(created), 0) FROM ftsd_jobs WHERE state = %s",
                               (QUEUED,)).fetchone()[0]
            return {"nodes": nodes, "jobs": {s: int(counts.get(s, 0)) for s in (QUEUED, RUNNING, DONE, FAILED)},
                    "lag_s": round(float(lag), 1)}
        return db.run(read, retry_s=2.0)
    finally:
        db.close()


def format_status(status: dict[str, Any]) -> str:
    lines = [f"{'node':<32} {'alive':>5} {'up':>8} {'heartbeat':>9} {'leases':>6}  writing"]
    for n in status["nodes"]:
        writing = " ".join(n["writing"][:5]) + (" ..." if len(n["writing"]) > 5 else "")
        lines.append(f"{n['node']:<32} {'yes' if n['alive'] else 'no':>5} {n['up_s']:>7.0f}s "
                     f"{n['heartbeat_age_s']:>8.1f}s {n['leases']:>6}  {writing}")
    jobs = status["jobs"]
    lines.append("queue: " + ", ".join(f"{jobs[s]} {s}" for s in (QUEUED, RUNNING, DONE, FAILED))
                 + f"; lag {status['lag_s']:.1f}s (oldest queued job)")
    return "\n".join(lines)


def enqueue(settings: Settings, kind: str, users: Sequence[str], mailboxes: Sequence[str] = ()) -> list[int]:
    """Queue one `kind` job per user in the shared queue (any node runs it). Returns the job ids."""
    db = _db(settings)
    boxes = sorted(set(mailboxes)) if kind == "index" else []
    try:
        return [db.run(lambda conn, u=user: enqueue_job(conn, kind, u, boxes).id, retry_s=5.0)  # type: ignore[misc]
                for user in users]
    finally:
        db.close()
