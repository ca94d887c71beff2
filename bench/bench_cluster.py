"""Cluster-mode figures (docs/scale-out.md): coordination cost per job, takeover time of a dead node's users,
search latency through a node that does not hold the user's lease, throughput of 1 vs 3 nodes on the same cores.

Starts a throw-away PostgreSQL (initdb in a temp dir, loopback) and `ftsd serve` processes over generated
Maildirs in a temp dir; everything is removed at the end. A few minutes on 2 cores.

    python bench/bench_cluster.py [--users 120] [--messages 10] [--jobs 1000] [--takeover 100]

Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftsd.cluster import admin  # noqa: E402
from ftsd.cluster.lease import Leases  # noqa: E402
from ftsd.cluster.queue import PgJobQueue  # noqa: E402
from ftsd.daemon.jobs import DONE  # noqa: E402
from ftsd.settings import load_settings  # noqa: E402
from tests.cluster.nodes import WORDS, Node, make_users, wait_idle  # noqa: E402
from tests.cluster.pg import Postgres, start_postgres, stop_postgres  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def server_cpu_s(pg: Postgres) -> float:
    """CPU seconds used so far by the PostgreSQL server processes (postmaster and its children)."""
    master = int((pg.datadir / "postmaster.pid").read_text().split()[0])
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == master or int(fields[1]) == master:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def coordination(pg: Postgres, jobs: int) -> None:
    """enqueue + claim (lease taken) + finish (lease released) of `jobs` jobs that do no work."""
    dsn = pg.new_database()
    q = PgJobQueue(dsn, Leases(dsn, "bench", grace_s=0))
    users = [f"user{n:05d}@example.org" for n in range(jobs)]
    cpu, server, wall = time.process_time(), server_cpu_s(pg), time.perf_counter()
    before = q.db.queries + q.leases.db.queries
    for user in users:
        q.enqueue("index", user)
    enqueue_wall = time.perf_counter() - wall
    while (job := q.claim()) is not None:
        q.finish(job.id, DONE, {"indexed": 0})
    wall = time.perf_counter() - wall
    cpu, server = time.process_time() - cpu, server_cpu_s(pg) - server
    queries = q.db.queries + q.leases.db.queries - before
    print(f"coordination, {jobs} jobs: {wall / jobs * 1e3:.2f} ms wall/job (enqueue {enqueue_wall / jobs * 1e3:.2f}), "
          f"node CPU {cpu / jobs * 1e3:.2f} ms/job, PostgreSQL CPU {server / jobs * 1e3:.2f} ms/job, "
          f"{queries / jobs:.1f} round trips/job", flush=True)
    q.close()
    q.leases.leave()


_HOLDER = """
import sys, time
from ftsd.cluster.lease import Leases
from ftsd.cluster.queue import PgJobQueue
dsn, n = sys.argv[1], int(sys.argv[2])
q = PgJobQueue(dsn, Leases(dsn, "victim", grace_s=0))
got = 0
while got < n and q.claim() is not None:
    got += 1
print(got, flush=True)
time.sleep(600)
"""


def takeover(pg: Postgres, users: int) -> None:
    """A node holding `users` leases (running their jobs) is SIGKILLed: how long until another node runs them."""
    dsn = pg.new_database()
    q = PgJobQueue(dsn, Leases(dsn, "survivor", grace_s=0))
    for n in range(users):
        q.enqueue("index", f"user{n:05d}@example.org")
    victim = subprocess.Popen([sys.executable, "-c", _HOLDER, dsn, str(users)], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert victim.stdout is not None
    assert int(victim.stdout.readline()) == users
    assert q.claim() is None  # every user is leased by the victim
    killed = time.perf_counter()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    victim.stdout.close()
    first, taken = 0.0, 0
    while taken < users:
        job = q.claim()
        if job is None:
            continue
        first = first or time.perf_counter() - killed
        taken += 1
        q.finish(job.id, DONE, {})
    every = time.perf_counter() - killed
    print(f"takeover of {users} users of a SIGKILLed node: first {first * 1e3:.0f} ms, all {every * 1e3:.0f} ms "
          "after the kill (claiming in a loop; a job runner polls once a second: add up to 1 s)", flush=True)
    q.close()
    q.leases.leave()


def run_nodes(tmp: Path, dsn: str, count: int, users: list[str], threads: int = 2) -> float:
    """Start `count` nodes, queue an index job per user, return the seconds until the queue is drained."""
    nodes = [Node.make(tmp, f"t{count}x{threads}n{i}", dsn) for i in range(count)]
    for node in nodes:
        text = node.config.read_text().replace("workers = 1", "workers = 2")
        node.config.write_text(text.replace("job_threads = 2", f"job_threads = {threads}"))
        node.start()
    try:
        for node in nodes:
            node.ready()
        settings = load_settings(nodes[0].config)
        started = time.perf_counter()
        admin.enqueue(settings, "index", users)
        wait_idle(nodes[0].url(), 1800)
        return time.perf_counter() - started
    finally:
        for node in nodes:
            node.stop()


def throughput(pg: Postgres, tmp: Path, n_users: int, messages: int) -> list[str]:
    users = make_users(tmp / "vmail", n_users, seed=1, per_user=messages)
    total = n_users * messages
    # 1 x 6 job threads: as many jobs in flight as 3 nodes x 2, so the difference is the cost of the cluster
    for count, threads in ((1, 2), (3, 2), (1, 6)):
        shutil.rmtree(tmp / "index", ignore_errors=True)
        seconds = run_nodes(tmp, pg.new_database(), count, users, threads)
        print(f"throughput, {count} node(s) x ({threads} job threads, 2 parser workers) on the same 2 cores: "
              f"{total} messages of {n_users} users in {seconds:.1f} s = {total / seconds:.0f} msg/s", flush=True)
    return users


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return f"p50 {statistics.median(samples) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms"


def search_latency(pg: Postgres, tmp: Path, users: list[str], searches: int) -> None:
    """The same searches through a single-node service, a cluster node with the lease free (it takes it for
    autoindex and gives it back), and a cluster node while another node holds every user's lease."""
    rng = random.Random(3)
    queries = [(rng.choice(users), rng.choice(WORDS)[:4]) for _ in range(searches)]
    dsn = pg.new_database()
    single = Node.make(tmp, "single", dsn)
    text = single.config.read_text()
    single.config.write_text(text[:text.index("[cluster]")])
    node = Node.make(tmp, "reader", dsn)
    for label, target, hold in (("single node (no cluster)", single, False), ("cluster, lease free", node, False),
                                ("cluster, lease held by another node", node, True)):
        target.start()
        holder = Leases(dsn, "holder", grace_s=0) if hold else None
        try:
            target.ready()
            if holder:
                assert all(holder.try_acquire(u) for u in users)
            with httpx.Client(base_url=target.url(), timeout=30) as client:
                for user, word in queries[:20]:  # warm up: readers open, pages cached
                    client.post(f"/v1/users/{user}/search", json={"mailbox": "INBOX", "query": f"TEXT {word}"})
                times = []
                for user, word in queries:
                    t0 = time.perf_counter()
                    r = client.post(f"/v1/users/{user}/search", json={"mailbox": "INBOX", "query": f"TEXT {word}"})
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 200, r.text
            print(f"search latency, {label}: {percentiles(times)} ({searches} HTTP searches, one at a time)",
                  flush=True)
        finally:
            if holder:
                holder.leave()
            target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, default=120, help="users of the throughput run")
    parser.add_argument("--messages", type=int, default=10, help="messages per user")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs of the coordination run")
    parser.add_argument("--takeover", type=int, default=100, help="users held by the node that is killed")
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--only", choices=["coordination", "takeover", "throughput", "search"])
    args = parser.parse_args()
    pg = start_postgres()
    tmp = Path(tempfile.mkdtemp(prefix="ftsd-bench-cluster-"))
    try:
        if args.only in (None, "coordination"):
            coordination(pg, args.jobs)
        if args.only in (None, "takeover"):
            takeover(pg, args.takeover)
        if args.only in (None, "throughput"):
            users = throughput(pg, tmp, args.users, args.messages)
        if args.only in (None, "search"):
            if args.only:
                users = make_users(tmp / "vmail", args.users, seed=1, per_user=args.messages)
            search_latency(pg, tmp, users, args.searches)
    finally:
        stop_postgres(pg)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
