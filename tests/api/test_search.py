"""Search over the wire (TCP and Unix socket): answers, errors as JSON, user isolation, request limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ftsd import service
from ftsd.store.index import index_path
from tests.api.conftest import ALICE, BOB, Server, start_server, wait_for, wait_job
from tests.maildirs import MailDir


@pytest.fixture(params=["tcp", "uds"])
def client(request: pytest.FixtureRequest, server: Server) -> Iterator[httpx.Client]:
    with server.tcp() if request.param == "tcp" else server.uds() as c:
        yield c


def search(client: httpx.Client, query: str, user: str = ALICE, **body: object) -> httpx.Response:
    return client.post(f"/v1/users/{user}/search", json={"query": query, **body})


def test_search_one_mailbox(client: httpx.Client, mail: dict[str, int]) -> None:
    r = search(client, 'TEXT "hello world" NOT FROM bob', mailbox="INBOX")
    assert r.status_code == 200
    assert r.json() == {"mailbox": "INBOX", "uidvalidity": r.json()["uidvalidity"], "uids": [mail["invoice"]]}
    assert search(client, "BODY hello").json()["uids"] == [mail["invoice"], mail["lunch"]]  # INBOX by default
    assert search(client, "SUBJECT quarterly", mailbox="Archive").json()["uids"] == [mail["report"]]


def test_search_many_mailboxes(client: httpx.Client, mail: dict[str, int]) -> None:
    every = search(client, "TEXT hello", mailboxes=["*"]).json()["results"]
    found = {row["mailbox"]: row["uids"] for row in every}
    assert found == {"INBOX": [mail["invoice"], mail["lunch"]], "Archive": [], "Trash": [mail["trash"]]}
    listed = search(client, "OR SUBJECT quarterly SUBJECT lunch", mailboxes=["INBOX", "Archive"]).json()
    assert [(row["mailbox"], row["uids"]) for row in listed["results"]] == [
        ("INBOX", [mail["lunch"]]), ("Archive", [mail["report"]])]


def error_of(response: httpx.Response, status: int) -> str:
    """The error code of a JSON error response with this status (and no traceback in it)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert "Traceback" not in response.text
    code: str = body["error"]["code"]
    return code


def test_query_errors_are_400(client: httpx.Client) -> None:
    assert error_of(search(client, "FOO bar"), 400) == "bad_query"
    assert error_of(search(client, "SINCE 1-Jan-2024"), 400) == "bad_query"
    assert error_of(search(client, '(TEXT "unterminated'), 400) == "bad_query"
    assert error_of(search(client, "TEXT " + "x" * 70_000), 400) == "bad_query"  # longer than 64 KiB


def test_unknown_user_and_mailbox_are_404(client: httpx.Client) -> None:
    assert error_of(search(client, "TEXT x", user="nobody@example.org"), 404) == "unknown_user"
    assert error_of(search(client, "TEXT x", mailbox="NoSuchFolder"), 404) == "unknown_mailbox"
    assert error_of(search(client, "TEXT x", mailbox="../bob"), 404) == "unknown_mailbox"


@pytest.mark.parametrize("name", [
    "..%2Fbob@example.org", "..%2F..%2Fexample.org%2Fbob", "a%2Fb", "%00", "bob%00@example.org", ".bob@example.org",
    "..", "%2E%2E", "bob@example.org%2F..%2Fbob", "-bob@example.org", "alice@..",
])
def test_bad_user_names_never_reach_another_user(server: Server, mail: dict[str, int], name: str) -> None:
    bob_index = index_path(service.get_user(server.settings, BOB)).parent
    with server.tcp() as client:
        r = client.post(f"/v1/users/{name}/search", json={"query": "TEXT secretword", "mailboxes": ["*"]})
        assert r.status_code in (400, 404), r.text
        error_of(r, r.status_code)
        assert client.post(f"/v1/users/{name}/index").status_code in (400, 404)
        assert client.get(f"/v1/users/{name}/status").status_code in (400, 404)
    assert not bob_index.exists()  # nothing opened or created bob's index
    with server.tcp() as client:  # while bob's own search finds his message
        assert search(client, "TEXT secretword", user=BOB).json()["uids"] == [mail["bob"]]
        assert search(client, "TEXT secretword").json()["uids"] == []  # and alice's does not


def test_malformed_requests(client: httpx.Client) -> None:
    url = f"/v1/users/{ALICE}/search"
    bad_json = client.post(url, content=b'{"query": ', headers={"content-type": "application/json"})
    assert error_of(bad_json, 400) == "malformed_json"
    assert error_of(client.post(url, json={"query": "ALL", "colour": "red"}), 422) == "invalid_request"
    assert error_of(client.post(url, json={"mailbox": "INBOX"}), 422) == "invalid_request"
    assert error_of(client.post(url, json={"query": 17}), 422) == "invalid_request"
    assert error_of(client.post(url, json={"query": "ALL", "mailbox": "INBOX", "mailboxes": ["*"]}), 422) \
        == "invalid_request"
    assert error_of(client.post(url, json=["ALL"]), 422) == "invalid_request"
    assert error_of(client.get("/v1/nothing/here"), 404) == "not_found"
    assert error_of(client.get(url), 405) == "method_not_allowed"
    assert error_of(client.get("/v1/jobs/notanumber"), 422) == "invalid_request"


def test_huge_bodies_are_413(client: httpx.Client) -> None:
    url = f"/v1/users/{ALICE}/search"
    huge = b'{"query": "TEXT ' + b"a" * 200_000 + b'"}'
    assert error_of(client.post(url, content=huge, headers={"content-type": "application/json"}), 413) \
        == "body_too_large"

    def chunks() -> object:  # no Content-Length: the streamed bytes are counted
        yield b'{"query": "TEXT '
        for _ in range(30):
            yield b"a" * 10_000
        yield b'"}'

    streamed = client.post(url, content=chunks(), headers={"content-type": "application/json"})  # type: ignore[arg-type]
    assert error_of(streamed, 413) == "body_too_large"


def test_new_mail_is_found_without_an_index_call(server: Server, maildir: MailDir, mail: dict[str, int]) -> None:
    with server.tcp() as client:
        assert search(client, "SUBJECT invoice").json()["uids"] == [mail["invoice"]]  # the index exists now
        uid = maildir.deliver(subject="Invoice 18", body="a fresh invoice")
        assert search(client, "SUBJECT invoice").json()["uids"] == [mail["invoice"], uid]
        maildir.expunge("INBOX", mail["invoice"])
        assert search(client, "SUBJECT invoice").json()["uids"] == [uid]
        assert search(client, "SUBJECT invoice", autoindex=False).json()["uids"] == [uid]


def test_watcher_indexes_new_mail(server: Server, maildir: MailDir, mail: dict[str, int]) -> None:
    """Mail delivered while the service runs is indexed by a watcher job, with no search and no index call."""
    with server.uds() as client:
        def archive_indexed() -> int:
            rows = client.get(f"/v1/users/{ALICE}/status").json()["mailboxes"]
            return int(next(r["indexed"] for r in rows if r["mailbox"] == "Archive"))

        assert archive_indexed() == 0
        maildir.deliver("Archive", subject="Filed", body="filed away")
        maildir.deliver("Trash", subject="Thrown", body="thrown away")  # excluded: no job for it
        wait_for(lambda: archive_indexed() == 2)
        assert client.get("/healthz").json()["watcher"] in ("inotify", "polling")
        rows = client.get(f"/v1/users/{ALICE}/status").json()["mailboxes"]
        assert next(r["indexed"] for r in rows if r["mailbox"] == "Trash") == 0
        assert "ftsd_watcher_jobs_total 1.0" in client.get("/metrics").text


def test_trash_is_not_bulk_indexed_but_searchable(server: Server, mail: dict[str, int]) -> None:
    report = service.index_users(server.settings, all_users=True)
    assert report.failed == [] and report.users == 2
    with server.uds() as client:
        rows = {r["mailbox"]: r for r in client.get(f"/v1/users/{ALICE}/status").json()["mailboxes"]}
        assert rows["Trash"]["indexed"] == 0 and rows["Trash"]["excluded"] is True
        assert rows["INBOX"]["indexed"] == 2 and rows["Archive"]["indexed"] == 1
        assert search(client, "BODY discarded", mailbox="Trash").json()["uids"] == [mail["trash"]]
        assert search(client, "BODY discarded", mailbox="Trash", autoindex=False).json()["uids"] == [mail["trash"]]
        job = client.post(f"/v1/users/{ALICE}/index").json()["job"]
        assert wait_job(client, job)["state"] == "done"


def test_message_status(server: Server, mail: dict[str, int], tmp_path: Path) -> None:
    with server.tcp() as client:
        assert error_of(client.get(f"/v1/users/{ALICE}/status", params={"uid": mail["invoice"]}), 404) \
            == "unknown_mailbox"  # not indexed yet
        wait_job(client, client.post(f"/v1/users/{ALICE}/index").json()["job"])
        info = client.get(f"/v1/users/{ALICE}/status", params={"mailbox": "INBOX", "uid": mail["invoice"]}).json()
        assert info["parts"] and info["parts"][0]["content_type"].startswith("text/plain")
        # the UID and the file come from the Maildir as it is now, not from the document
        assert info["uid"] == mail["invoice"]
        files = {p.name: p.stat().st_size for p in (tmp_path / "vmail" / "example.org" / "alice").glob("*/*")}
        assert files[info["file"]] == info["size"]
        assert info["parts_from"] == "file"  # plain text only: the document keeps no data, the file tells its parts
        assert error_of(client.get(f"/v1/users/{ALICE}/status", params={"uid": 0}), 422) == "invalid_request"


def test_socket_index_path_untouched(server: Server, tmp_path: Path) -> None:
    """The API never writes into the Maildir (ftsd only reads mail)."""
    before = sorted(p.name for p in (tmp_path / "vmail" / "example.org" / "alice").rglob("*"))
    with server.tcp() as client:
        search(client, "TEXT hello", mailboxes=["*"])
        wait_job(client, client.post(f"/v1/users/{ALICE}/rescan").json()["job"])
    assert sorted(p.name for p in (tmp_path / "vmail" / "example.org" / "alice").rglob("*")) == before


def test_search_does_not_wait_for_a_busy_writer(server: Server, mail: dict[str, int]) -> None:
    """Another writer holds alice's index: the search answers (exactly, from disk) after a bounded lock wait."""
    import time

    from ftsd.indexer.sync import IndexReport

    user = service.get_user(server.settings, ALICE)
    with service.open_writer(server.settings, user, IndexReport()), server.tcp() as client:
        start = time.monotonic()
        assert search(client, 'BODY "please pay"').json()["uids"] == [mail["invoice"]]
        assert time.monotonic() - start < 4.0


def test_watcher_picks_up_a_new_user(config, mail: dict[str, int], tmp_path) -> None:
    """A user created while the service runs is found by the periodic userdb scan, indexed, and watched."""
    running = start_server(config(server={"users_rescan_s": 0.3}))
    try:
        carol = MailDir(tmp_path / "vmail" / "example.org" / "carol")
        first = carol.deliver(subject="Welcome carol", body="first mail of a new account")
        with running.uds() as client:
            def indexed() -> int:
                rows = client.get("/v1/users/carol@example.org/status").json()["mailboxes"]
                return sum(int(r["indexed"]) for r in rows)

            wait_for(lambda: indexed() == 1)  # the new user's job, with no search and no index call
            second = carol.deliver(subject="Second", body="delivered after the user was found")
            wait_for(lambda: indexed() == 2)  # and the Maildir is watched from then on
            hits = search(client, "BODY account", user="carol@example.org", autoindex=False).json()["uids"]
            assert hits == [first] and second > first
    finally:
        running.stop()
