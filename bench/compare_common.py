"""Shared parts of bench/compare and bench/scale.py: measuring a process tree (wall, CPU, summed RSS/PSS), reading
a Maildir, and the seeded query set (rare words, common words, in-word substrings). Standard library only.

Not a benchmark by itself; see bench/compare (`bench/compare MAILDIR`) and bench/scale.py.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import hashlib
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

RESERVED = {"and", "or", "not", "xor", "near", "adj", "text", "body"}  # query-language words of some tool


# -- measuring processes -----------------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """The pid and all its living descendants."""
    children = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _kb(path: str, key: bytes) -> int:
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS and PSS (kB) of a process tree until stopped; keeps the peaks."""

    def __init__(self, root: int, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root, self.interval_s = root, interval_s
        self.peak_rss_kb = self.peak_pss_kb = self.peak_procs = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self.sample()
            if self._stop_event.wait(self.interval_s):
                return

    def sample(self) -> None:
        pids = process_tree(self.root)
        rss = sum(_kb(f"/proc/{p}/status", b"VmRSS:") for p in pids)
        pss = sum(_kb(f"/proc/{p}/smaps_rollup", b"Pss:") for p in pids)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.peak_procs = max(self.peak_procs, len(pids))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@dataclass
class Measured:
    """One measured command."""

    wall_s: float
    cpu_s: float
    maxrss_mb: float  # largest single process
    tree_rss_mb: float  # peak of the summed RSS of the process tree
    tree_pss_mb: float  # peak of the summed PSS of the process tree
    procs: int
    returncode: int
    output: str


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_measured(cmd: Sequence[str], log: Path, *, timeout_s: float, env: dict[str, str] | None = None) -> Measured:
    """Run cmd in its own process group with a time limit; wall, CPU (wait4 rusage), memory (sampled)."""
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        timer = threading.Timer(timeout_s, kill_group, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            sampler.stop()
            kill_group(proc.pid)  # leftovers of the group, if any
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if not timer.finished.is_set() or wall >= timeout_s:
        text += f"\n[killed after the {timeout_s:.0f} s time limit]"
    return Measured(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, sampler.peak_rss_kb / 1024,
                    sampler.peak_pss_kb / 1024, sampler.peak_procs, proc.returncode, text[-3000:])


def run(cmd: Sequence[str], *, timeout_s: float = 600, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {(result.stderr or result.stdout)[-2000:]}")
    return result


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def proc_cpu_s(pid: int) -> float:
    """user+sys CPU seconds of one living process (from /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# -- the Maildir -------------------------------------------------------------------------------------------------


def folders(maildir: Path) -> list[Path]:
    """INBOX (the root) and every Maildir++ folder."""
    subs = sorted(p for p in maildir.iterdir() if p.name.startswith(".") and (p / "cur").is_dir())
    return [maildir, *subs]


def message_files(folder: Path) -> Iterator[Path]:
    for sub in ("cur", "new"):
        if (folder / sub).is_dir():
            yield from sorted(p for p in (folder / sub).iterdir() if p.is_file())


def mail_stats(maildir: Path) -> tuple[int, int]:
    files = [p for f in folders(maildir) for p in message_files(f)]
    return len(files), sum(p.stat().st_size for p in files)


def fingerprint(maildir: Path) -> list[tuple[str, int, int]]:
    out = []
    for dirpath, _, files in os.walk(maildir):
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            out.append((os.path.relpath(os.path.join(dirpath, name), maildir), st.st_size, st.st_mtime_ns))
    return sorted(out)


def ftsd_digest() -> str:
    """A short digest of ftsd's sources (ftsd/**/*.py), so that a report names the code it measured."""
    root = Path(__file__).resolve().parents[1] / "ftsd"
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def du(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# -- the query set -----------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+")


def _text_of(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    texts = [str(msg.get("subject", ""))]
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            text = payload.decode(part.get_content_charset() or "latin-1", "replace") if _known(part) else ""
            texts.append(re.sub(r"<[^>]*>", " ", text) if part.get_content_subtype() == "html" else text)
    return "\n".join(texts)


def _known(part: email.message.Message) -> bool:
    try:
        "".encode(part.get_content_charset() or "latin-1")
    except LookupError:
        return False
    return True


@dataclass
class QuerySet:
    rare: list[str]
    common: list[str]
    substrings: list[str]

    def categories(self, substrings: bool) -> dict[str, list[str]]:
        out = {"rare": self.rare, "common": self.common}
        if substrings:
            out["substring"] = self.substrings
        return out


def build_queries(maildir: Path, n: int, seed: int = 1) -> QuerySet:
    """n rare words (2-5 INBOX messages), n common words (200 most frequent), n in-word substrings."""
    df: Counter[str] = Counter()
    for path in message_files(maildir):
        words = set(_WORD.findall(_text_of(path.read_bytes()).lower()))
        df.update(w for w in words if 4 <= len(w) <= 14 and w not in RESERVED)
    rng = random.Random(seed)
    by_freq = [w for w, _ in df.most_common()]
    common = rng.sample(by_freq[:200], min(n, len(by_freq[:200])))
    rare_pool = sorted(w for w, c in df.items() if 2 <= c <= 5 and 5 <= len(w) <= 12)
    rare = rng.sample(rare_pool, min(n, len(rare_pool)))
    subs_pool = sorted({w[2:7] for w, c in df.items() if c >= 3 and len(w) >= 9} - set(df) - RESERVED)
    substrings = rng.sample(subs_pool, min(n, len(subs_pool)))
    return QuerySet(rare, common, substrings)


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed_writes(path: Path, docs: Sequence[bytes], commit_every: int, flags: int = 0) -> tuple[float, float]:
    """Serialised documents written by add_document into a new glass database at `path`, a commit every
    `commit_every` and at the end: (CPU s of it all, CPU s of the add_document calls alone)."""
    import xapian

    db = xapian.WritableDatabase(str(path), xapian.DB_CREATE | flags)
    start, adding = time.process_time(), 0.0
    for n, data in enumerate(docs, 1):
        t = time.process_time()
        db.add_document(xapian.Document.unserialise(data))
        adding += time.process_time() - t
        if n % commit_every == 0:
            db.commit()
    db.commit()
    db.close()
    return time.process_time() - start, adding
