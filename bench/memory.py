#!/usr/bin/env python3
"""Where the indexer's memory goes, per process: runs `ftsd index` on a Maildir (a fresh index each run), samples
every process of its tree (/proc/PID/status VmRSS and /proc/PID/smaps_rollup Pss, Private, Shared) every 0.1 s,
and prints the peak per role: the CLI process (walker + writer + feeder), each indexer worker, the decoder sandbox's
fork server and its per-part children (peak of their sum), and the tree's peak summed RSS / PSS.

    .venv/bin/python bench/memory.py /tmp/corpus/sa/corpus-a [--runs 1] [--workers 2] [--set commit_limit=50]
    .venv/bin/python bench/memory.py MAILDIR --refs main,HEAD --runs 2   # before/after in one run
    .venv/bin/python bench/memory.py MAILDIR --trace /tmp/mem   # + /tmp/mem.<tree>.<run>.csv: per role every ~2 s

With --refs the same run alternates worktrees of those git refs (made in temp dirs, removed after), so that before
and after are measured on the same load (and the tree can be edited meanwhile). `REF+NAME=VALUE` runs REF with that
environment variable set (e.g. HEAD+MALLOC_MMAP_THRESHOLD_=262144). Standalone: not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_common import kill_group, mail_stats, process_tree  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for path, keys in ((f"/proc/{pid}/status", ("VmRSS:",)),
                       (f"/proc/{pid}/smaps_rollup", ("Pss:", "Private_Clean:", "Private_Dirty:", "Shared_Clean:",
                                                       "Shared_Dirty:"))):
        try:
            with open(path) as f:
                for line in f:
                    key = line.split(":", 1)[0] + ":"
                    if key in keys:
                        out[key[:-1]] = int(line.split()[1])
        except (OSError, ValueError):
            return {}
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[1])
    except (OSError, ValueError):
        return 0


class RoleSampler(threading.Thread):
    """Peak RSS/PSS (kB) per role of the tree under `root`, and the peak of the tree's sums."""

    def __init__(self, root: int, interval_s: float = 0.1, trace: list[str] | None = None) -> None:
        super().__init__(daemon=True)
        self.root, self.interval_s, self.trace = root, interval_s, trace
        self.started = time.perf_counter()
        self.peaks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.tree_rss = self.tree_pss = 0
        self.stop_event = threading.Event()
        self.roles: dict[int, str] = {}

    def role(self, pid: int) -> str:
        """A child of the CLI is a worker until it execs the sandbox server (Popen forks first): not cached."""
        if pid == self.root:
            return "cli (writer)"
        if self.roles.get(_ppid(pid)) == "sandbox server":
            return "sandbox children (sum)"
        role = "sandbox server" if "ftsd.decoders.sandbox" in _cmdline(pid) else (
            "workers (sum)" if _ppid(pid) == self.root else f"other (sum): {_cmdline(pid)[:50]}")
        self.roles[pid] = role
        return role

    def run(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for pid in process_tree(self.root):
                values = _status(pid)
                if not values:
                    continue
                role = self.role(pid)
                for key, value in values.items():
                    sums[role][key] += value
                    if role == "workers (sum)":
                        sums["worker (largest)"][key] = max(sums["worker (largest)"][key], value)
            for role, values in sums.items():
                for key, value in values.items():
                    self.peaks[role][key] = max(self.peaks[role][key], value)
            if self.trace is not None and sums:
                elapsed = time.perf_counter() - self.started
                if not self.trace or elapsed >= float(self.trace[-1].split(",", 1)[0]) + 2:  # every ~2 s
                    self.trace += [f"{elapsed:.1f},{role},{v.get('VmRSS', 0) // 1024},{v.get('Pss', 0) // 1024},"
                                   f"{(v.get('Private_Clean', 0) + v.get('Private_Dirty', 0)) // 1024}"
                                   for role, v in sorted(sums.items())]
            # "worker (largest)" is one of the workers again: counted once, in "workers (sum)"
            roles = [v for role, v in sums.items() if role != "worker (largest)"]
            self.tree_rss = max(self.tree_rss, sum(v.get("VmRSS", 0) for v in roles))
            self.tree_pss = max(self.tree_pss, sum(v.get("Pss", 0) for v in roles))


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peaks: dict[str, dict[str, int]]  # role -> key -> peak kB
    tree_rss: int
    tree_pss: int


def run_once(repo: Path, maildir: Path, workers: int, extra: list[str], variables: dict[str, str],
             trace: Path | None = None) -> Run:
    work = Path(tempfile.mkdtemp(prefix="ftsd-memory-"))
    cfg = work / "ftsd.toml"
    cfg.write_text(f'mail_location = "maildir:{maildir.parent}/%u:INDEX={work}/idx/%u"\n'
                   f'[fts]\nworkers = {workers}\nautoindex_exclude = []\n' + "".join(f"{s}\n" for s in extra))
    env = {**os.environ, "PYTHONPATH": str(repo), **variables}
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, "-m", "ftsd", "index", "-c", str(cfg), "-u", maildir.name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=repo,
                            start_new_session=True)
    sampler = RoleSampler(proc.pid, trace=[] if trace else None)
    sampler.start()
    try:
        _, err = proc.communicate(timeout=3600)
    finally:
        sampler.stop_event.set()
        sampler.join()
        kill_group(proc.pid)
    wall = time.perf_counter() - start
    if trace and sampler.trace is not None:  # seconds,role,RSS MB,PSS MB,private MB: growth over the run
        trace.write_text("s,role,rss_mb,pss_mb,private_mb\n" + "\n".join(sampler.trace) + "\n")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["rm", "-rf", str(work)], check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ftsd index failed: {err.decode(errors='replace')[-2000:]}")
    return Run(wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
               {r: dict(v) for r, v in sampler.peaks.items()}, sampler.tree_rss, sampler.tree_pss)


def worktree(ref: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="ftsd-memory-ref-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), ref], check=True,
                   capture_output=True)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir", type=Path)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="an [fts] line, e.g. commit_limit=50")
    ap.add_argument("--trace", type=Path, help="write every ~2 s's per-role RSS/PSS/private (CSV) to FILE.N.csv")
    ap.add_argument("--refs", help="git refs to run instead of this tree, alternating (e.g. main,HEAD)")
    args = ap.parse_args()
    maildir = args.maildir.resolve()
    messages, _ = mail_stats(maildir)
    names = args.refs.split(",") if args.refs else ["this tree"]
    refs = {name.split("+")[0] for name in names} - {"this tree"}
    paths = {ref: worktree(ref) for ref in refs}
    paths["this tree"] = REPO
    trees = {name: paths[name.split("+")[0]] for name in names}
    results: dict[str, list[Run]] = defaultdict(list)
    try:
        for n in range(args.runs):
            for name, repo in (trees.items() if n % 2 == 0 else reversed(trees.items())):
                variables = dict(item.split("=", 1) for item in name.split("+")[1:])
                trace = args.trace.with_suffix(f".{name.replace('/', '_')}.{n + 1}.csv") if args.trace else None
                r = run_once(repo, maildir, args.workers, args.set, variables, trace)
                results[name].append(r)
                print(f"run {n + 1} {name}: {r.wall_s:.1f} s, {r.cpu_s / messages * 1e3:.2f} ms CPU/msg, tree "
                      f"{r.tree_rss / 1024:.0f} / {r.tree_pss / 1024:.0f} MB", file=sys.stderr)
    finally:
        for path in paths.values():
            if path != REPO:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False,
                               capture_output=True)
    load = os.getloadavg()
    print(f"## Peak memory per process: {maildir}, {messages:,} messages, fts.workers = {args.workers} "
          f"{' '.join(args.set)}; max over {args.runs} run(s); load average {load[0]:.1f}\n")
    print("| tree | role | RSS MB | PSS MB | private MB | shared MB |")
    print("|---|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        for role in sorted({role for r in rows for role in r.peaks}):
            def peak(keys: tuple[str, ...], role: str = role, rows: list[Run] = rows) -> float:
                return max(sum(r.peaks.get(role, {}).get(k, 0) for k in keys) for r in rows) / 1024
            print(f"| {name} | {role} | {peak(('VmRSS',)):.0f} | {peak(('Pss',)):.0f} "
                  f"| {peak(('Private_Clean', 'Private_Dirty')):.0f} | {peak(('Shared_Clean', 'Shared_Dirty')):.0f} |")
        print(f"| {name} | **tree peak (sum)** | {max(r.tree_rss for r in rows) / 1024:.0f} "
              f"| {max(r.tree_pss for r in rows) / 1024:.0f} | | |")
    for name, rows in results.items():
        cpu = statistics.median(r.cpu_s for r in rows) / messages * 1e3
        wall = statistics.median(r.wall_s for r in rows)
        print(f"\n{name}: {cpu:.2f} ms CPU/msg (tree, median), {messages / wall:.0f} msg/s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
