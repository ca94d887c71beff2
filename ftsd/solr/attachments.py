"""Attachment text for the documents Dovecot sends (`[solr] attachments`): Dovecot's fts_solr sends a message's
headers and text parts, never the text inside a PDF or an office document (2.4 has no decoder at all), so ftsd
finds the message in the user's Maildir by (mailbox GUID, UID), decodes its attachments with its own sandboxed
decoders and the document gets that text too.

In: user, mailbox GUID, UID; out: the text (or "" and one log line when the message cannot be read). Bounded as
the indexer is: fts.max_message_bytes read, decoders.* limits per part, fts.max_text_chars of text; and one
update request spends at most solr.attachments_time_s on attachments, so Dovecot's 60 s wait is never used up.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ftsd import service
from ftsd.errors import FtsdError
from ftsd.maildir import Mailbox, read_message, scan_mailbox, uidlist_dir
from ftsd.message import attachment_text
from ftsd.runtime import Runtime
from ftsd.settings import Settings
from ftsd.userdb import User

log = logging.getLogger(__name__)


class AttachmentTexts:
    """One update request's attachment texts: the mailboxes it looked up (by user and GUID) and its time budget."""

    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings, self.runtime = settings, runtime
        self.deadline = time.monotonic() + settings.solr.attachments_time_s
        self._boxes: dict[tuple[str, str], Mailbox | None] = {}
        self._rescanned: set[tuple[str, str]] = set()
        self._said: set[str] = set()  # one log line per user and reason within a request
        self.added = 0  # documents that got attachment text

    def text(self, user: User, guid: str, uid: int) -> str:
        """The attachments' text of one message; "" when it has none or cannot be read (logged). Never raises."""
        if time.monotonic() >= self.deadline:
            self._note(user, "time", "solr.attachments_time_s spent in this update request: the remaining "
                       "documents are indexed as Dovecot sent them (run `doveadm fts rescan` later to add it)",
                       guid, uid)
            return ""
        path = self._path(user, guid, uid)
        if path is None:
            return ""
        try:
            message = read_message(path, self.settings.fts.max_message_bytes)
        except FileNotFoundError:
            self._note(user, f"gone {guid} {uid}", "message file gone (expunged meanwhile): indexed as sent",
                       guid, uid, logging.INFO)
            return ""
        except OSError as exc:
            self._note(user, "read", f"cannot read {path}: {exc.strerror}: indexed as sent", guid, uid)
            return ""
        if not message.complete:  # larger than fts.max_message_bytes: the indexer keeps only its headers too
            return ""
        try:
            text, _parts = attachment_text(message.data, self.runtime.decoders.bind(self.settings))
        except Exception as exc:  # a message the MIME parser cannot take: Dovecot's text is all there is
            self._note(user, f"parse {guid} {uid}", f"attachments not decoded ({type(exc).__name__}): indexed as "
                       "sent", guid, uid)
            return ""
        self.added += bool(text)
        return text

    def _path(self, user: User, guid: str, uid: int) -> Path | None:
        key = (user.name, guid)
        try:
            if key not in self._boxes:
                self._boxes[key] = service.find_mailbox(user, guid, self.runtime.scans)
            box = self._boxes[key]
            if box is not None and uid not in box.messages and key not in self._rescanned:
                # delivered after the scan that was cached: look once more, past the cache
                self._rescanned.add(key)
                box = self._boxes[key] = scan_mailbox(user.maildir, box.name, uidlist_dir(user), None,
                                                      user.follow_links)
        except (FtsdError, OSError) as exc:
            # lasting (ftsd's user may not read this Maildir: writer = "dovecot" set-ups): once per process
            level = logging.WARNING if self.runtime.notices.first(f"attachments\0{user.name}") else logging.DEBUG
            self._note(user, "maildir", f"Maildir not readable ({exc}): indexed as Dovecot sent them (give ftsd "
                       "read access to the Maildirs, or set solr.attachments = false)", guid, uid, level)
            self._boxes[key] = None
            return None
        if box is None:
            self._note(user, f"box {guid}", f"no mailbox with GUID {guid} in {user.maildir}: indexed as sent",
                       guid, uid)
            return None
        path = box.messages.get(uid)
        if path is None:
            self._note(user, f"uid {guid} {uid}", f"{box.name} has no UID {uid} (expunged meanwhile?): indexed as "
                       "sent", guid, uid, logging.INFO)
            return None
        return Path(path)

    def _note(self, user: User, reason: str, what: str, guid: str, uid: int, level: int = logging.WARNING) -> None:
        if f"{user.name}\0{reason}" in self._said:
            return
        self._said.add(f"{user.name}\0{reason}")
        log.log(level, "%s: attachments of %s/%d: %s", user.name, guid, uid, what,
                    extra={"user": user.name, "mailbox_guid": guid, "uid": uid})
