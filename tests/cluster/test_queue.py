"""The PostgreSQL queue and the writer lease against a real PostgreSQL: the JobQueue rules (merge, round-robin,
one running job per user), lease exclusivity across nodes, takeover of a dead node's job, a coordinator
restart (leases lost, nothing granted within the grace period)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from ftsd.cluster.lease import Leases
from ftsd.cluster.queue import PgJobQueue
from ftsd.daemon.jobs import DONE, QUEUED, RUNNING, Job


@pytest.fixture
def node() -> Iterator[Callable[..., PgJobQueue]]:
    """node(dsn, name, tmp_path=None, grace_s=0) -> a node's queue (with its leases), closed at the end."""
    made: list[PgJobQueue] = []

    def make(dsn: str, name: str, tmp_path: Path | None = None, grace_s: float = 0.0) -> PgJobQueue:
        log = tmp_path / "leases.log" if tmp_path else None
        made.append(PgJobQueue(dsn, Leases(dsn, name, grace_s=grace_s, log_path=log)))
        return made[-1]

    yield make
    for q in made:
        q.close()
        q.leases.db.close()


def claimed(q: PgJobQueue) -> Job:
    job = q.claim()
    assert job is not None
    return job


def job_of(q: PgJobQueue, job_id: int) -> Job:
    job = q.get(job_id)
    assert job is not None
    return job


def kill_session(dsn: str, leases: Leases) -> None:
    """End a node's lease session from the server side, as its death does."""
    pid = leases.db.conn.info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
        assert row is not None and row[0]
    time.sleep(0.2)


def test_enqueue_merges_and_claims_round_robin(dsn, node):
    q = node(dsn, "a")
    first = q.enqueue("index", "alice", ["INBOX"])
    assert q.enqueue("index", "alice", ["Sent"]).id == first.id  # union of the mailboxes
    assert job_of(q, first.id).mailboxes == ("INBOX", "Sent")
    q.enqueue("optimize", "alice")
    bob = q.enqueue("index", "bob")
    assert q.enqueue("index", "bob").id == bob.id
    assert q.counts()[QUEUED] == 3

    got = claimed(q)
    assert (got.user, got.state) == ("alice", RUNNING)
    again = claimed(q)
    assert again.user == "bob"  # alice runs: never two jobs of one user
    assert q.claim() is None
    assert q.others_waiting("bob") is False
    q.finish(got.id, DONE, {"indexed": 3})
    assert job_of(q, got.id).result == {"indexed": 3}
    third = claimed(q)
    assert (third.user, third.kind) == ("alice", "optimize")
    assert q.counts() == {QUEUED: 0, RUNNING: 2, DONE: 1, "failed": 0}
    with pytest.raises(ValueError):
        q.enqueue("nope", "x")


def test_lease_is_exclusive_across_nodes(dsn, tmp_path, node):
    a, b = node(dsn, "a", tmp_path), node(dsn, "b", tmp_path)
    a.enqueue("index", "carol")
    job = claimed(a)
    assert job.user == "carol" and a.may_write("carol")
    assert not b.leases.try_acquire("carol")
    b.enqueue("index", "carol", ["Other"])  # queued behind the running one
    assert b.claim() is None
    assert not a.leases.try_acquire("carol")  # a node never takes its own lease twice
    a.finish(job.id, DONE, {})
    assert not a.may_write("carol")
    nxt = claimed(b)
    assert nxt.user == "carol" and nxt.mailboxes == ("Other",)
    events = [line.split()[1:] for line in (tmp_path / "leases.log").read_text().splitlines()]
    assert events == [[a.node, "grant", "carol"], [a.node, "release", "carol"], [b.node, "grant", "carol"]]


def test_dead_node_job_is_taken_over_and_its_late_outcome_dropped(dsn, node):
    a, b = node(dsn, "a"), node(dsn, "b")
    a.enqueue("index", "dave")
    job = claimed(a)
    assert b.claim() is None
    kill_session(dsn, a.leases)
    assert not a.may_write("dave")  # noticed without a round trip
    taken = claimed(b)
    assert taken.id == job.id and taken.user == "dave" and b.may_write("dave")
    a.finish(job.id, DONE, {"indexed": 1})  # the dead node's late word does not count
    assert job_of(b, job.id).state == RUNNING
    b.finish(job.id, DONE, {"indexed": 2})
    assert job_of(b, job.id).result == {"indexed": 2}


def test_recover_requeues_only_jobs_of_dead_nodes(dsn, node):
    a, b, c = node(dsn, "a"), node(dsn, "b"), node(dsn, "c")
    a.enqueue("index", "erin")
    b.enqueue("index", "frank")
    ja, jb = claimed(a), claimed(b)
    kill_session(dsn, a.leases)
    assert c.recover() == 1
    assert job_of(c, ja.id).state == QUEUED and job_of(c, jb.id).state == RUNNING


@pytest.mark.slow
def test_coordinator_restart_loses_leases_and_grants_after_grace(postgres, dsn, tmp_path, node):
    a, b = node(dsn, "a", tmp_path, grace_s=2.0), node(dsn, "b", tmp_path, grace_s=2.0)
    time.sleep(max(0.0, 2.0 - _uptime(dsn)))
    a.enqueue("index", "gina")
    job = claimed(a)
    assert job is not None and a.may_write("gina")
    postgres.restart()
    assert not a.may_write("gina")
    assert b.claim() is None  # PostgreSQL is back, but within the grace period
    assert not b.leases.try_acquire("gina")
    time.sleep(2.2)
    taken = claimed(b)
    assert taken is not None and taken.id == job.id
    a.finish(job.id, QUEUED)  # the old holder stops: no effect on the new owner
    assert job_of(b, job.id).state == RUNNING
    lines = (tmp_path / "leases.log").read_text().splitlines()
    assert [line.split()[2] for line in lines] == ["grant", "lost", "grant"]


def _uptime(dsn: str) -> float:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT extract(epoch from now() - pg_postmaster_start_time())").fetchone()
        assert row is not None
        return float(row[0])


def test_active_users_and_one_rescan_per_period(dsn, node):
    a, b = node(dsn, "a"), node(dsn, "b")
    a.touch(["hana@example.org", "ivan@example.org"])
    b.touch(["hana@example.org"])
    assert a.active_users(60) == ["hana@example.org", "ivan@example.org"]
    assert a.claim_rescan(60) and not b.claim_rescan(60) and not a.claim_rescan(60)
    assert b.claim_rescan(0.0)  # a period of 0: due again at once
