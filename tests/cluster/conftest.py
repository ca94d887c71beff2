"""The cluster tests' PostgreSQL: one throw-away server per session (tests/cluster/pg.py), a fresh database per
test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("psycopg")

from tests.cluster.pg import Postgres, PostgresMissing, start_postgres, stop_postgres  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    try:
        pg = start_postgres()
    except PostgresMissing as exc:
        pytest.fail(str(exc))
    try:
        yield pg
    finally:
        stop_postgres(pg)


@pytest.fixture
def dsn(postgres: Postgres) -> str:
    """A fresh database of the session's server."""
    return postgres.new_database()
