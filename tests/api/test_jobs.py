"""Jobs over the wire (index, rescan, optimize), the persistent queue's rules (fairness, one writer per user,
dedupe, restart), health and metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ftsd import service
from ftsd.daemon.jobs import DONE, QUEUED, RUNNING, Job, JobQueue, JobRunner
from ftsd.indexer.sync import IndexReport
from ftsd.runtime import Runtime
from ftsd.settings import load_settings
from tests.api.conftest import ALICE, BOB, Server, start_server, wait_for, wait_job
from tests.maildirs import MailDir


def test_index_optimize_rescan_jobs(server: Server, maildir: MailDir, mail: dict[str, int]) -> None:
    with server.uds() as client:
        created = client.post(f"/v1/users/{ALICE}/index")
        assert created.status_code == 202 and set(created.json()) == {"job"}
        info = wait_job(client, created.json()["job"])
        assert info["state"] == "done" and info["kind"] == "index" and info["user"] == ALICE
        assert info["result"]["indexed"] == 3 and info["result"]["failed"] == 0  # INBOX 2 + Archive 1, no Trash
        assert info["created"] <= info["started"] <= info["finished"]

        only = client.post(f"/v1/users/{ALICE}/index", json={"mailboxes": ["Trash"]}).json()["job"]
        assert wait_job(client, only)["result"]["indexed"] == 1

        maildir.expunge("INBOX", mail["lunch"])
        rescan = wait_job(client, client.post(f"/v1/users/{ALICE}/rescan").json()["job"])
        assert rescan["state"] == "done" and rescan["result"]["removed"] == 1

        optimized = wait_job(client, client.post(f"/v1/users/{ALICE}/optimize").json()["job"])
        assert optimized["state"] == "done" and optimized["result"]["bytes_after"] > 0

        rows = {r["mailbox"]: r["indexed"] for r in client.get(f"/v1/users/{ALICE}/status").json()["mailboxes"]}
        assert rows == {"INBOX": 1, "Archive": 1, "Trash": 1}


def test_job_errors(server: Server) -> None:
    with server.tcp() as client:
        assert client.get("/v1/jobs/999").json()["error"]["code"] == "unknown_job"
        assert client.post("/v1/users/nobody@example.org/index").status_code == 404
        assert client.post(f"/v1/users/{ALICE}/index", json={"mailboxes": ["../x"]}).status_code == 404
        assert client.post(f"/v1/users/{ALICE}/index", json={"mailbox": "INBOX"}).status_code == 422


def test_healthz_and_metrics(server: Server) -> None:
    with server.tcp() as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and set(health["jobs"]) == {"queued", "running", "done", "failed"}
        client.post(f"/v1/users/{ALICE}/search", json={"query": "TEXT hello"})
        client.post(f"/v1/users/{ALICE}/search", json={"query": "BAD"})
        wait_job(client, client.post(f"/v1/users/{BOB}/index").json()["job"])
        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        for line in ('ftsd_searches_total{outcome="ok"} 1.0', 'ftsd_searches_total{outcome="bad_query"} 1.0',
                     "ftsd_search_seconds_count 2.0", "ftsd_messages_indexed_total 1.0", "ftsd_job_queue_depth 0.0",
                     'ftsd_jobs_total{kind="index",state="done"} 1.0', 'ftsd_http_requests_total{method="POST",'):
            assert line in text, line
        assert "ftsd_index_bytes " in text
        assert client.get("/docs").status_code == 200 and "/v1/users/{user}/search" in client.get(
            "/openapi.json").text


def test_token_is_required_on_tcp_only(config: Callable[..., Path], mail: dict[str, int]) -> None:
    running = start_server(config(server={"token": "s3cret"}))
    try:
        url = f"/v1/users/{ALICE}/search"
        body = {"query": "TEXT hello"}
        with running.tcp(token="") as anonymous:
            denied = anonymous.post(url, json=body)
            assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
            assert denied.headers["www-authenticate"].startswith("Bearer")
            assert anonymous.get("/metrics").status_code == 401
            assert anonymous.get("/healthz").status_code == 200  # liveness probes need no token
            assert anonymous.post(url, json=body, auth=("dovecot", "s3cret")).status_code == 200  # Basic, as URL auth
            assert anonymous.post(url, json=body, auth=("dovecot", "wrong")).status_code == 401
        with running.tcp(token="wrong") as wrong:
            assert wrong.post(url, json=body).status_code == 401
        with running.tcp(token="s3cret") as good:
            assert good.post(url, json=body).json()["uids"] == [mail["invoice"], mail["lunch"]]
        with running.uds() as local:  # the socket's file mode protects it instead
            assert local.post(url, json=body).status_code == 200
    finally:
        running.stop()


def test_socket_mode(config: Callable[..., Path], mail: dict[str, int]) -> None:
    running = start_server(config())
    try:
        assert running.socket.stat().st_mode & 0o777 == 0o660  # the default socket_mode
    finally:
        running.stop()
    running = start_server(config(server={"socket_mode": "0600"}))
    try:
        assert running.socket.stat().st_mode & 0o777 == 0o600
    finally:
        running.stop()


def test_queue_survives_a_restart(config: Callable[..., Path], mail: dict[str, int]) -> None:
    path = config()
    settings = load_settings(path)
    queue = JobQueue(settings.resolve(settings.server.state_dir) / "jobs.sqlite")
    queued = queue.enqueue("index", ALICE)
    interrupted = queue.enqueue("index", BOB)
    assert queue.claim() is not None and queue.get(queued.id).state == RUNNING  # type: ignore[union-attr]
    queue.close()  # the service "died" with alice's job running and bob's queued

    running = start_server(path)
    try:
        with running.tcp() as client:
            assert wait_job(client, queued.id)["result"]["indexed"] == 3
            assert wait_job(client, interrupted.id)["result"]["indexed"] == 1
    finally:
        running.stop()
    status = service.status(settings, BOB)
    assert status["mailboxes"][0]["indexed"] == 1


def test_queue_fairness_one_writer_per_user_and_dedupe(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "jobs.sqlite")
    a1 = queue.enqueue("index", "a")
    assert queue.enqueue("index", "a").id == a1.id  # identical queued job: merged
    a2 = queue.enqueue("optimize", "a")
    boxes = queue.enqueue("index", "b", ["INBOX"])
    assert queue.enqueue("index", "b", ["Sent"]).id == boxes.id  # mailbox lists are united
    assert queue.get(boxes.id).mailboxes == ("INBOX", "Sent")  # type: ignore[union-attr]
    c1 = queue.enqueue("index", "c")

    first = queue.claim()
    assert first is not None and first.id == a1.id
    second = queue.claim()
    third = queue.claim()
    assert [second.user, third.user] == ["b", "c"]  # type: ignore[union-attr]
    assert queue.claim() is None  # a's optimize must wait: a's index job holds a's writer
    assert queue.others_waiting("b") is False
    queue.finish(a1.id, DONE, {"indexed": 1})
    assert queue.claim().id == a2.id  # type: ignore[union-attr]
    assert queue.counts() == {"queued": 0, "running": 3, "done": 1, "failed": 0}

    queue.finish(c1.id, QUEUED)  # preempted: back in the queue, same id
    queue.enqueue("index", "d")
    assert queue.others_waiting("c") is True
    assert queue.claim().user == "d"  # type: ignore[union-attr]  # d was never served: it goes before c
    assert queue.recover() == 3  # b, a (optimize) and d were running
    assert queue.counts()["queued"] == 4
    with pytest.raises(ValueError):
        queue.enqueue("delete-everything", "a")


def test_runner_preempts_a_long_job_for_a_waiting_user(make_config: Callable[..., Path], maildir: MailDir,
                                                       bob: MailDir, tmp_path: Path) -> None:
    """With one worker, alice's long job yields to bob's after its time slice (at a mailbox start), then resumes."""
    for n in range(40):
        maildir.deliver("INBOX" if n < 20 else "Archive", subject=f"message {n}", body="hello")
    bob.deliver(subject="bob", body="hello")
    settings = load_settings(make_config(fts={"workers": 1, "commit_limit": 5}))
    queue = JobQueue(tmp_path / "q.sqlite")
    finished: list[Job] = []
    runner = JobRunner(settings, queue, Runtime(settings), threads=1, time_slice_s=0.0, on_finish=finished.append)
    alice_job = queue.enqueue("index", ALICE)
    bob_job = queue.enqueue("index", BOB)
    runner.start()
    try:
        wait_for(lambda: len(finished) == 2)
    finally:
        runner.stop()
    assert [j.id for j in finished] == [bob_job.id, alice_job.id]  # bob did not wait for all of alice's mail
    assert finished[1].result is not None and finished[1].result["indexed"] == 20  # INBOX was done before it yielded
    assert [row["indexed"] for row in service.status(settings, ALICE)["mailboxes"]] == [20, 20]


def test_a_job_that_meets_a_locked_index_is_tried_again_later(make_config: Callable[..., Path], maildir: MailDir,
                                                              tmp_path: Path) -> None:
    """Another writer holds alice's index: the job goes back to the queue with a delay (not failed), and runs
    once the lock is free; with the lock never freed it fails after its last try."""
    maildir.deliver(subject="locked out", body="hello")
    settings = load_settings(make_config(fts={"workers": 1, "lock_timeout_s": 0.1}))
    user = service.get_user(settings, ALICE)
    queue = JobQueue(tmp_path / "q.sqlite")
    finished: list[Job] = []
    runner = JobRunner(settings, queue, Runtime(settings), threads=1, on_finish=finished.append,
                       retry_delays_s=(0.3, 0.3, 30.0))
    writer = service.open_writer(settings, user, IndexReport())  # another writer: a CLI run, a Solr update
    job = queue.enqueue("index", ALICE)
    runner.start()
    try:
        waiting = wait_for(lambda: (j := queue.get(job.id)) and j.state == QUEUED and j.error and "try 2" in j.error
                           and j)
        assert "locked" in waiting.error or "busy" in waiting.error, waiting.error
        assert not finished
        writer.__exit__(None, None, None)  # the other writer is done
        wait_for(lambda: finished, timeout=45)
        assert finished[0].state == DONE and finished[0].result["indexed"] == 1  # type: ignore[index]
        # never released: failed after the last delay
        writer = service.open_writer(settings, user, IndexReport())
        runner.retry_delays_s = (0.1,)
        again = queue.enqueue("index", ALICE)
        wait_for(lambda: len(finished) == 2, timeout=30)
        assert finished[1].id == again.id and finished[1].state == "failed" and "2 tries" in (finished[1].error or "")
    finally:
        writer.__exit__(None, None, None)
        runner.stop()
