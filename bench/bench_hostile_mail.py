#!/usr/bin/env python3
"""Hostile indexing: a Maildir of seeded damage over SpamAssassin messages, the parser triggers of issue 12,
and planted files (a FIFO, a symlink to /dev/zero, a 4 GB sparse file, symlinks out of the tree); `ftsd index`
runs on it while the whole process tree's RSS is sampled; then a set of searches runs over the mailbox.
Prints peak RSS (tree and largest process), counts, and whether anything hung. Standalone: not collected by
pytest. `--ftsd` runs another checkout's ftsd (the code before a change) on the same Maildir.

    .venv/bin/python bench/bench_hostile_mail.py [--corpus DIR|ARCHIVE] [--count 3000] [--seed 7] [--workers 2]
                                            [--ftsd /work/main]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.hostile.generate import TRIGGERS, mutate, subject_token, with_subject_first  # noqa: E402
from tests.maildirs import MailDir  # noqa: E402

ARCHIVE = Path("/work/shared/corpus/spamassassin-ml4h/spamassassin-ml4h.maildir.tar.zst")
SAFETY_AS = 3 << 30  # address-space cap per process, so the code before the change cannot take the host
QUERIES = ["TEXT the", "BODY click", "BODY \"click here\"", "TEXT e", "SUBJECT re", "FROM taint.org",
           "HEADER Content-Type multipart", "OR BODY money NOT TEXT linux", "TEXT \"utf-8\"", "BODY zzqqxx",
           "TEXT \"--\"", "SUBJECT hostiletok"]


def corpus_root(source: Path, work: Path) -> Path:
    if source.is_dir():
        return source / "corpus-a" if (source / "corpus-a").is_dir() else source
    subprocess.run(["tar", "-I", "zstd", "-xf", str(source), "-C", str(work)], check=True)
    return work / "corpus-a"


def build(maildir: MailDir, corpus: Path, count: int, seed: int, outside: Path) -> tuple[int, int]:
    """Deliver the damaged corpus, the triggers and the planted files; returns (messages, subject tokens)."""
    rng = random.Random(seed)
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.parent.name == "cur")
    tokens = 0
    for i, path in enumerate(rng.sample(files, min(count, len(files)))):
        raw = path.read_bytes()
        if i % 3:  # two in three damaged
            moved, protected = with_subject_first(raw, subject_token(i))
            raw, tokens = mutate(moved, protected, rng)[0], tokens + 1
        maildir.deliver(raw=raw)
    n = count
    for _ in range(3):
        for make in TRIGGERS.values():
            maildir.deliver(raw=make(subject_token(100_000 + n)))
            n, tokens = n + 1, tokens + 1
    cur = maildir.root / "cur"
    (outside / "secret.eml").write_bytes(b"Subject: outsidesecret\n\nnever to be found\n")
    os.symlink(outside / "secret.eml", cur / "3000000001.M1P1.x:2,S")
    os.symlink("/dev/zero", cur / "3000000002.M1P1.x:2,S")
    os.mkfifo(cur / "3000000003.M1P1.x:2,S")
    with open(cur / "3000000004.M1P1.x:2,S", "wb") as f:
        f.write(b"Subject: sparse\n\n")
        f.truncate(4 << 30)
    os.symlink(outside, maildir.root / ".Outside")
    return n + 4, tokens


def tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += [p for p, pp in parents.items() if pp == pid]
    return out


def rss_kb(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, IndexError, ValueError):
        return 0


class Sampler(threading.Thread):
    """Peak RSS of a process tree (sum) and of its largest process; opens any FIFO reader it finds blocked."""

    def __init__(self, pid: int | None, fifos: list[Path]) -> None:
        super().__init__(daemon=True)
        self.pid, self.fifos = pid, fifos
        self.peak_tree = self.peak_one = self.unblocked = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.pid is not None:
                sizes = [rss_kb(p) for p in tree(self.pid)]
                self.peak_tree = max(self.peak_tree, sum(sizes))
                self.peak_one = max(self.peak_one, max(sizes, default=0))
            for fifo in self.fifos:  # a reader blocked on the FIFO: give it EOF, count the hang
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                    self.unblocked += 1
                except OSError:
                    pass
            time.sleep(0.02)


def limit_child() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (SAFETY_AS, SAFETY_AS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path(os.environ.get("FTSD_CORPUS", ARCHIVE)))
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ftsd", type=Path, default=REPO, help="checkout whose ftsd runs (its .venv)")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp"), help="where the Maildir and index go")
    ap.add_argument("--keep", action="store_true", help="keep the Maildir and index afterwards")
    args = ap.parse_args()

    # not /tmp/ftsd-*: other test runs on a shared machine clean those up
    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hostile-bench-", dir=args.workdir))
    corpus = corpus_root(args.corpus, work)
    maildir = MailDir(work / "vmail" / "example.org" / "alice", uidlist=False)  # planted files get UIDs too
    (work / "outside").mkdir()
    planted, tokens = build(maildir, corpus, args.count, args.seed, work / "outside")
    cfg = work / "ftsd.toml"
    cfg.write_text(f'mail_location = "maildir:{work}/vmail/%d/%n:INDEX={work}/index/%d/%n"\n'
                   f'[fts]\nworkers = {args.workers}\nautoindex = false\n'
                   f'[server]\nsocket = "{work}/s.sock"\nstate_dir = "{work}/state"\n')
    python = str(args.ftsd / ".venv" / "bin" / "python")
    ftsd = [python, "-m", "ftsd"]
    env = {**os.environ, "PYTHONPATH": str(args.ftsd)}
    fifos = [maildir.root / "cur" / "3000000003.M1P1.x:2,S"]

    start = time.perf_counter()
    proc = subprocess.Popen([*ftsd, "index", "-c", str(cfg), "-u", "alice@example.org"], cwd=args.ftsd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=limit_child)
    sampler = Sampler(proc.pid, fifos)
    sampler.start()
    try:
        out, _ = proc.communicate(timeout=args.timeout)
        hung = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        hung = True
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    summary = out.decode(errors="replace").strip().splitlines()[-1:] or ["(no summary)"]

    answered = failed = timeouts = 0
    found_tokens = -1
    releaser = Sampler(None, fifos)  # searches read unindexed mail from disk: the FIFO again, before
    releaser.start()
    for query in QUERIES:
        try:
            res = subprocess.run([*ftsd, "search", "-c", str(cfg), "-u", "alice@example.org", *shlex.split(query)],
                                 cwd=args.ftsd, env=env, capture_output=True, timeout=120, preexec_fn=limit_child)
        except subprocess.TimeoutExpired:
            timeouts += 1
            continue
        answered += res.returncode == 0
        failed += res.returncode != 0
        if query == "SUBJECT hostiletok" and res.returncode == 0:
            found_tokens = len(res.stdout.split())
    leaked = subprocess.run([*ftsd, "search", "-c", str(cfg), "-u", "alice@example.org", "-m", "*", "TEXT",
                             "outsidesecret"], cwd=args.ftsd, env=env, capture_output=True, timeout=120,
                            preexec_fn=limit_child)
    print(f"ftsd: {args.ftsd}  messages planted: {planted} (seed {args.seed}, {args.count} corpus messages, "
          f"{tokens} with a subject token)")
    print(f"index: exit {proc.returncode}{' HUNG (killed)' if hung else ''}, {wall:.1f} s: {summary[0]}")
    print(f"peak RSS: tree {sampler.peak_tree / 1024:.0f} MB, largest process {sampler.peak_one / 1024:.0f} MB "
          f"(each process capped at {SAFETY_AS >> 30} GB address space)")
    releaser.stop.set()
    releaser.join()
    print(f"FIFO readers that blocked and had to be released by the bench: index {sampler.unblocked}, "
          f"searches {releaser.unblocked}")
    print(f"searches: {answered}/{len(QUERIES)} answered, {failed} failed, {timeouts} timed out; "
          f"SUBJECT tokens found {found_tokens}/{tokens}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"outside file found by TEXT search: {'YES' if re.search(rb'[0-9]', leaked.stdout) else 'no'} "
          f"(exit {leaked.returncode})")


if __name__ == "__main__":
    main()
