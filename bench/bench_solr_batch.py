"""How long Dovecot's fts_solr update requests take to be answered by ftsd, at Dovecot's batch sizes.

    python bench/bench_solr_batch.py [--dovecot 2.3|2.4] [--messages 2000] [--batch 1000 100 ...] [--corpus DIR]
                                     [--direct ROUNDS] [--no-dovecot]

Part 1, for each batch size: a private Dovecot (2.3 from the host, or 2.4 from the cached Debian 13 root, which
needs root) runs `doveadm index` over N messages of the SpamAssassin corpus INBOX into a fresh ftsd (uvicorn, one
worker), with Dovecot's HTTP client debug log on. Each `POST .../update` line of that log gives the time Dovecot
waited for the answer, including the time Dovecot itself spent producing the streamed body.

Part 2 (`--direct`): the same batch sizes POSTed by this script as one prepared body (documents made from the
corpus, as Dovecot makes them), timing only what Dovecot's request timeout counts: Dovecot's HTTP client resets its
60 s timer whenever the upload makes progress, so the time at risk is from the last byte sent to the answer.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import http.client
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_dovecot import DEFAULT_CORPUS, corpus_maildir  # noqa: E402

from tests.conftest import to_toml  # noqa: E402
from tests.integration.dovecot import Dovecot, FtsdServer, solr_plugin  # noqa: E402

NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # Dovecot does not send these
BOX = "0123456789abcdef0123456789abcdef"
TOOK = re.compile(r"\(took (\d+) ms")  # 2.3 and 2.4 word the line differently around it


def _server() -> tuple[Path, FtsdServer]:
    """A work directory and an ftsd server configured in it (not started)."""
    root = Path(tempfile.mkdtemp(prefix="ftsd-bench-batch-", dir="/tmp"))
    config = root / "ftsd.toml"
    config.write_text(to_toml({
        # the Maildirs Dovecot makes (Dovecot.add_user): ftsd answers 404 for a user without one
        "mail_location": f"maildir:{root}/dovecot/mail/%u:INDEX={root}/ftsd-index/%u",
        "userdb": {"driver": "static"},
        "server": {"socket": "", "state_dir": str(root / "ftsd-state")},
    }))
    return root, FtsdServer(config, root / "ftsd.log")


def run(version: str, box: Path, messages: int, batch: int) -> None:
    root, ftsd = _server()
    root.chmod(0o755)  # the Dovecot of the Debian 13 root reads below it
    dovecot: Dovecot
    if version == "2.4":
        from tests.integration.debroot import ensure_root
        from tests.integration.dovecot24 import Dovecot24

        dovecot = Dovecot24(ensure_root()[0], root / "dovecot", ftsd.url, mail_debug=True,
                            extra=f"fts_solr_batch_size = {batch}")
    else:
        dovecot = Dovecot(root / "dovecot", {**solr_plugin(ftsd.url, f"batch_size={batch}", "debug"),
                                             "mail_debug": "yes"})
    files = sorted((box / "cur").iterdir())[:messages]
    try:
        dovecot.add_user("bench", files)
        ftsd.start()
        dovecot.start()
        dovecot.doveadm("mailbox", "status", "-u", "bench", "messages", "INBOX")  # Dovecot's own index first
        started = time.monotonic()
        done = dovecot.doveadm("-D", "index", "-u", "bench", "INBOX")  # -D: the HTTP client logs each request
        wall = time.monotonic() - started
        lines = (done.stderr + dovecot.log.read_text(errors="replace")).splitlines()
        took = [int(m[1]) for line in lines if "/update]" in line and "Got 200 response" in line
                if (m := TOOK.search(line))]
        print(f"Dovecot {version}, {len(files)} messages, batch {batch}: doveadm index {wall:.1f} s, "
              f"{len(took)} update requests, answered in p50 {statistics.median(took) / 1000:.2f} s, "
              f"max {max(took) / 1000:.2f} s (Dovecot's limit: 60 s)" if took else
              f"Dovecot {version}: no update request found in the log\n{dovecot.log_tail()}")
    finally:
        dovecot.stop()
        ftsd.kill()
        shutil.rmtree(root, ignore_errors=True)


def _doc(uid: int, raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    body = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                body.append(payload.decode("utf-8", "replace"))
    fields = {"uid": str(uid), "box": BOX, "user": "bench", "id": f"{uid}/{BOX}/bench",
              "subject": str(msg.get("Subject", "")), "from": str(msg.get("From", "")), "to": str(msg.get("To", "")),
              "hdr": "\n".join(f"{k}: {v}" for k, v in msg.items()), "body": "\n".join(body)}
    return "<doc>" + "".join(f'<field name="{k}">{escape(NOT_XML.sub(" ", v))}</field>'
                             for k, v in fields.items()) + "</doc>"


def direct(box: Path, batch: int, rounds: int) -> None:
    root, ftsd = _server()
    files = sorted((box / "cur").iterdir())[: batch * rounds]
    for sub in ("cur", "new", "tmp"):  # no Dovecot here: the user's (empty) Maildir
        (root / "dovecot" / "mail" / "bench" / sub).mkdir(parents=True)
    try:
        ftsd.start()
        for n in range(rounds):
            chunk = files[n * batch:(n + 1) * batch]
            body = ("<add>" + "".join(_doc(n * batch + i + 1, p.read_bytes()) for i, p in enumerate(chunk))
                    + "</add>").encode("utf-8", "surrogateescape")
            conn = http.client.HTTPConnection("127.0.0.1", ftsd.port, timeout=300)
            started = time.monotonic()
            conn.putrequest("POST", "/solr/dovecot/update")
            conn.putheader("Content-Type", "text/xml")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            conn.send(body)
            sent = time.monotonic()
            reply = conn.getresponse()
            answer = reply.read()
            answered = time.monotonic()
            conn.close()
            assert reply.status == 200, (reply.status, answer[:500])
            print(f"direct POST of {len(chunk)} documents ({len(body) / 1e6:.1f} MB): upload {sent - started:.2f} s, "
                  f"last byte to answer {answered - sent:.2f} s, total {answered - started:.2f} s")
    finally:
        ftsd.kill()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dovecot", choices=("2.3", "2.4"), default="2.3")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1000, 100])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help=".tar.zst or extracted directory")
    parser.add_argument("--direct", type=int, default=0, metavar="ROUNDS",
                        help="also POST ROUNDS prepared batches of each size straight to ftsd")
    parser.add_argument("--no-dovecot", action="store_true", help="only the direct POSTs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftsd-bench-corpus-") as scratch:
        box = corpus_maildir(args.corpus, Path(scratch))
        for batch in args.batch:
            if not args.no_dovecot:
                run(args.dovecot, box, args.messages, batch)
            if args.direct:
                direct(box, batch, args.direct)


if __name__ == "__main__":
    main()
