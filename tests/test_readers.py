"""The reader pool (store/readers.py) on real indexes: idle readers are bounded in number and in the bytes their
caches hold, the reader given back last stays."""

from pathlib import Path

from ftsd import service
from ftsd.settings import load_settings
from ftsd.store.index import index_path
from ftsd.store.lexicon import Lexicons
from ftsd.store.readers import ReaderPool
from tests.maildirs import MailDir

USERS = ("alice@example.org", "bob@example.org")


def indexes(tmp_path: Path, make_config) -> list[Path]:
    settings = load_settings(make_config())
    for user in USERS:
        name, domain = user.split("@")
        box = MailDir(tmp_path / "vmail" / domain / name)
        for i in range(50):
            box.deliver(subject=f"message {i}", body=f"the word heron{i % 7}")
    service.index_users(settings, list(USERS))
    return [index_path(service.get_user(settings, user)) for user in USERS]


def search(pool: ReaderPool, path: Path) -> None:
    """One search of every INBOX document through a pooled reader: fills its caches."""
    with pool.reader(path) as searcher:
        assert searcher is not None
        (guid,) = searcher.guids()
        assert len(searcher.sorted_uids(searcher.piece(["body"], "heron", 40, 3), guid)) == 50


def test_idle_readers_are_bounded_by_the_bytes_of_their_caches(tmp_path: Path, make_config) -> None:
    first, second = indexes(tmp_path, make_config)
    roomy = ReaderPool(Lexicons())
    search(roomy, first)
    search(roomy, second)
    (a,), (b,) = roomy.idle(first), roomy.idle(second)
    assert a.cache_bytes() > 50 * 8 and b.cache_bytes() > 50 * 8  # a UID table and a mailbox's UIDs at least
    bounded = ReaderPool(Lexicons(), max_bytes=a.cache_bytes() + b.cache_bytes() - 1)
    search(bounded, first)
    search(bounded, second)
    assert bounded.idle(first) == [] and len(bounded.idle(second)) == 1  # the least recently used one went
    tiny = ReaderPool(Lexicons(), max_bytes=1)
    search(tiny, first)
    assert len(tiny.idle(first)) == 1  # the one given back last stays, however big
    for pool in (roomy, bounded, tiny):
        pool.clear()
