"""`doveadm index` of the SpamAssassin corpus through Dovecot's stock fts_solr plugin into ftsd, side by side
with Dovecot's fts-xapian plugin (partial=3 full=20), in the same run; then a few IMAP searches on both.

    python bench/bench_dovecot.py [--corpus PATH.tar.zst|DIR] [--limit N] [--skip-xapian]

Needs `apt-get install -y dovecot-imapd dovecot-solr dovecot-fts-xapian zstd`. Each backend gets its own private
Dovecot (tests/integration/dovecot.py) and its own copy of the Maildir; Dovecot's own indexes are built before the
clock starts, so the figure is FTS work only: Dovecot parsing and decoding the mail plus the backend. With ftsd
the backend is a separate process (uvicorn, one worker), so on a multi-core machine it runs beside Dovecot.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.dovecot import Dovecot, FtsdServer, missing_dovecot, solr_plugin  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "spamassassin-ml4h" / "spamassassin-ml4h.maildir.tar.zst"
USER = "bench"
SEARCHES = ["BODY linux", "TEXT money", "SUBJECT razor", "BODY nux", "BODY \"mailing list\"", "FROM yahoo",
            "BODY ux", "NOT BODY the"]


def corpus_maildir(source: Path, scratch: Path) -> Path:
    if source.is_dir():
        return source / "corpus-a" if (source / "corpus-a").is_dir() else source
    subprocess.run(["tar", "-I", "zstd", "-xf", str(source), "-C", str(scratch)], check=True)
    return scratch / "corpus-a"


def copy_maildir(src: Path, dest: Path, limit: int) -> int:
    """Copy every folder (cur/ new/), at most `limit` messages per folder when limit > 0; the message count."""
    count = 0
    for folder in [src, *sorted(p for p in src.iterdir() if p.name.startswith(".") and p.is_dir())]:
        target = dest if folder == src else dest / folder.name
        for sub in ("cur", "new", "tmp"):
            (target / sub).mkdir(parents=True, exist_ok=True)
        files = sorted((folder / "cur").iterdir()) + sorted((folder / "new").iterdir())
        for path in files[: limit or None]:
            shutil.copy2(path, target / ("cur" if path.parent.name == "cur" else "new") / path.name)
            count += 1
    return count


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process and its waited-for children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def run_backend(name: str, root: Path, maildir: Path, limit: int) -> dict[str, object]:
    root.mkdir(parents=True)
    root.chmod(0o755)
    ftsd: FtsdServer | None = None
    if name == "ftsd (fts_solr)":
        config = root / "ftsd.toml"
        config.write_text(f'mail_location = "maildir:{root}/mail/%u:INDEX={root}/ftsd-index/%u"\n'
                          f'[server]\nsocket = ""\nstate_dir = "{root}/ftsd-state"\n')
        ftsd = FtsdServer(config, root / "ftsd.log")
        dovecot = Dovecot(root / "dovecot", solr_plugin(ftsd.url))
        index_dir = root / "ftsd-index"
    else:
        plugin = {"fts": "xapian", "fts_xapian": "partial=3 full=20 verbose=0", "fts_autoindex": "yes",
                  "fts_enforced": "yes"}
        dovecot = Dovecot(root / "dovecot", plugin, mail_plugins="fts fts_xapian")
        index_dir = dovecot.maildir(USER) / "xapian-indexes"
    messages = copy_maildir(maildir, root / "dovecot" / "mail" / USER, limit)
    dovecot.add_user(USER, [])
    try:
        if ftsd:
            ftsd.start()
        dovecot.start()
        dovecot.doveadm("mailbox", "status", "-u", USER, "messages", "*")  # Dovecot's own indexes, untimed
        ftsd_cpu = cpu_seconds(ftsd.proc.pid) if ftsd and ftsd.proc else 0.0
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        dovecot.doveadm("index", "-u", USER, "*", timeout=3600)
        seconds = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        doveadm_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        ftsd_cpu = cpu_seconds(ftsd.proc.pid) - ftsd_cpu if ftsd and ftsd.proc else 0.0
        searches = {}
        conn = dovecot.imap(USER)
        conn.select("INBOX")
        for query in SEARCHES:
            times, hits = [], 0
            for _ in range(5):
                t0 = time.monotonic()
                typ, data = conn.uid("SEARCH", query)
                times.append(time.monotonic() - t0)
                hits = len(data[0].split()) if typ == "OK" else -1
            searches[query] = (hits, statistics.median(times))
        conn.logout()
        errors = re.findall(r"Error: .*", dovecot.log.read_text(errors="replace"))
        return {"messages": messages, "seconds": seconds, "bytes": du(index_dir), "searches": searches,
                "doveadm_cpu": doveadm_cpu, "ftsd_cpu": ftsd_cpu,
                "errors": len(errors), "first_error": errors[0] if errors else ""}
    finally:
        dovecot.stop()
        if ftsd:
            ftsd.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path(os.environ.get("FTSD_CORPUS", DEFAULT_CORPUS)))
    parser.add_argument("--limit", type=int, default=0, help="at most N messages per folder (0: all)")
    parser.add_argument("--skip-xapian", action="store_true", help="only ftsd")
    args = parser.parse_args(argv)
    if why := missing_dovecot():
        print(why, file=sys.stderr)
        return 2
    backends = ["ftsd (fts_solr)"] + ([] if args.skip_xapian else ["fts-xapian 1.5.5"])
    if not args.skip_xapian and not Path("/usr/lib/dovecot/modules/lib21_fts_xapian_plugin.so").exists():
        print("fts-xapian is missing: apt-get install -y dovecot-fts-xapian (or --skip-xapian)", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="ftsd-bench-"))
    scratch.chmod(0o755)
    try:
        maildir = corpus_maildir(args.corpus, scratch)
        results = {b: run_backend(b, scratch / f"b{i}", maildir, args.limit) for i, b in enumerate(backends)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{'backend':<18} {'messages':>8} {'doveadm index':>14} {'msg/s':>7} {'doveadm CPU':>12} "
          f"{'ftsd CPU':>9} {'index MB':>9} {'log errors':>10}")
    for name, r in results.items():
        n, s, b, dc, fc = r["messages"], r["seconds"], r["bytes"], r["doveadm_cpu"], r["ftsd_cpu"]
        assert isinstance(n, int) and isinstance(s, float) and isinstance(b, int)
        assert isinstance(dc, float) and isinstance(fc, float)
        ftsd_cell = f"{fc:>8.1f}s" if fc else f"{'-':>9}"
        print(f"{name:<18} {n:>8} {s:>13.1f}s {n / s:>7.0f} {dc:>11.1f}s {ftsd_cell} {b / 1e6:>9.1f} "
              f"{r['errors']:>10}")
        if r["first_error"]:
            print(f"    first logged error: {str(r['first_error'])[:150]}")
    print(f"\n{'IMAP UID SEARCH (INBOX)':<26}" + "".join(f"{name:>24}" for name in results))
    for query in SEARCHES:
        cells = []
        for r in results.values():
            hits, seconds = r["searches"][query]  # type: ignore[index]
            cells.append(f"{hits:>8} hits {seconds * 1000:>7.1f} ms")
        print(f"{query:<26}" + "".join(f"{c:>24}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
