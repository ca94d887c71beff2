"""One table (errors.OUTCOMES) giving the CLI's exit codes and the HTTP statuses along the class hierarchy (the
drawn error tree is checked by tests/test_docs.py)."""

from __future__ import annotations

import pytest

from ftsd import errors
from ftsd.api.errors import status_of
from ftsd.errors import OUTCOMES, FtsdError, outcome_of


def _classes() -> list[type[FtsdError]]:
    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, FtsdError)]


@pytest.mark.parametrize(("cls", "exit_code", "status"), [
    (errors.IndexLockedError, 75, 503), (errors.UnknownUserError, 67, 404), (errors.ConfigError, 78, 500),
    (errors.QueryError, 2, 400), (errors.UsageError, 2, 400), (errors.DiskFullError, 75, 503),
    (errors.CorruptIndexError, 75, 503), (errors.OutdatedIndexError, 75, 503), (errors.StoreError, 74, 500),
])
def test_one_table_for_exit_codes_and_statuses(cls: type[FtsdError], exit_code: int, status: int) -> None:
    exc = cls("x")
    assert outcome_of(exc).exit == exit_code
    assert status_of(exc)[0] == status


def test_every_class_has_an_outcome_along_its_hierarchy() -> None:
    class NewStoreError(errors.StoreError):
        pass

    assert outcome_of(NewStoreError("x")) == OUTCOMES[errors.StoreError]  # answers like its parent
    for cls in _classes():
        assert outcome_of(cls("x")) in OUTCOMES.values()
