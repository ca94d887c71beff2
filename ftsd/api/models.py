"""Wire models of the HTTP API (pydantic): what a request may carry (unknown fields are refused) and what a
response holds. Conversion from the service's results lives here too, so the routes stay a few lines each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ftsd.daemon.jobs import Job
from ftsd.errors import QueryError
from ftsd.query import Node, parse_query
from ftsd.search import MailboxResult
from ftsd.settings import LimitSettings

MAX_QUERY_CHARS = 65_536  # an IMAP SEARCH program longer than this is refused (400), not parsed


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Request):
    """One mailbox (`mailbox`, default INBOX) or several (`mailboxes`, `["*"]` = all)."""

    query: str = Field(description='IMAP SEARCH keys, e.g. TEXT "hello world" NOT FROM bob')
    mailbox: str | None = Field(None, description="One mailbox; the answer is a single result")
    mailboxes: list[str] | None = Field(None, min_length=1, description='Several mailboxes, ["*"] for all')
    autoindex: bool | None = Field(None, description="Index the mailboxes before answering (default: fts.autoindex)")

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"mailbox": "INBOX", "query": 'TEXT "hello world" NOT FROM bob'}]})

    @model_validator(mode="after")
    def _one_target(self) -> SearchRequest:
        if self.mailbox is not None and self.mailboxes is not None:
            raise ValueError("give either mailbox or mailboxes, not both")
        return self

    @property
    def multi(self) -> bool:
        return self.mailboxes is not None

    def targets(self) -> list[str]:
        return list(self.mailboxes) if self.mailboxes is not None else [self.mailbox or "INBOX"]

    def node(self, limits: LimitSettings) -> Node:
        """The parsed query, within the cost limits. Raises: QueryError (QueryCostError)."""
        if len(self.query) > MAX_QUERY_CHARS:
            raise QueryError(f"query is {len(self.query)} characters long; at most {MAX_QUERY_CHARS} are accepted")
        return parse_query(self.query, limits)


class IndexRequest(_Request):
    mailboxes: list[str] = Field(default_factory=list, description="Mailboxes to index (default: all not excluded)")


class MailboxUids(BaseModel):
    mailbox: str
    uidvalidity: int
    uids: list[int]


class SearchResults(BaseModel):
    results: list[MailboxUids]


def search_response(results: Sequence[MailboxResult], multi: bool) -> MailboxUids | SearchResults:
    rows = [MailboxUids(mailbox=r.mailbox, uidvalidity=r.uidvalidity, uids=r.uids) for r in results]
    return SearchResults(results=rows) if multi else rows[0]


class JobCreated(BaseModel):
    job: int


class JobProgress(BaseModel):
    total: int
    done: int


class JobInfo(BaseModel):
    id: int
    kind: Literal["index", "rescan", "optimize"]
    user: str
    mailboxes: list[str]
    state: Literal["queued", "running", "done", "failed"]
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    progress: JobProgress | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def of(cls, job: Job, progress: tuple[int, int] | None = None) -> JobInfo:
        def when(t: float | None) -> datetime | None:
            return datetime.fromtimestamp(t, UTC) if t is not None else None

        return cls(id=job.id, kind=job.kind, user=job.user, mailboxes=list(job.mailboxes),  # type: ignore[arg-type]
                   state=job.state, created=datetime.fromtimestamp(job.created, UTC),  # type: ignore[arg-type]
                   started=when(job.started), finished=when(job.finished), result=job.result, error=job.error,
                   progress=JobProgress(total=progress[0], done=progress[1]) if progress else None)


class MailboxStatus(BaseModel):
    mailbox: str
    uidvalidity: int
    guid: str
    messages: int
    indexed: int
    last_uid: int
    pending: int
    excluded: bool


class UserStatus(BaseModel):
    user: str
    index: str
    index_bytes: int
    index_state: Literal["none", "ok", "rebuilding", "damaged"] = "ok"
    mailboxes: list[MailboxStatus]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    jobs: dict[str, int]
    watcher: str  # starting, inotify, polling, inotify+polling (some users beyond the watch limit), off
    watcher_ready: bool  # every Maildir is watched or polled (False while the service is still listing users)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
