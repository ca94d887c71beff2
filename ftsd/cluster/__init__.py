"""Cluster mode: several `ftsd serve` nodes share users through PostgreSQL (opt-in: `[cluster] dsn`).

    db.py      one PostgreSQL connection with its own lock, reconnecting; the schema; user -> lock key
    lease.py   the per-user writer lease: session-bound advisory locks on a dedicated connection, node heartbeat
    queue.py   PgJobQueue: the JobQueue interface (enqueue/claim/finish/...) on shared tables, fair per user
    node.py    ClusterNode: what `ftsd serve` starts (leases, queue, periodic rescan of recently active users)
    admin.py   `ftsd cluster status` (nodes, their leases, queue depth per state, lag), `index -A -q` into the queue
    solr.py    fts_solr updates written under the lease

psycopg is imported only here, and only when a dsn is configured: single-node mode needs no PostgreSQL.
Design and figures: docs/scale-out.md.
"""
