#!/usr/bin/env python3
"""A mail provider on one machine: many users, most with little mail, a few with a lot.

    .venv/bin/python bench/scale_users.py [--users 1000] [--serve-users 10000] [--userdb passwd-file,ldap]
                                          [--searches 400] [--baseline 3000] [--output FILE.md] [--keep]

Generates `--users` users whose mailboxes are drawn from the SpamAssassin corpus (hard links, so no disk is
spent) with long-tailed sizes (Pareto: most users a few messages, a few users hundreds), each with an INBOX and,
above 5 messages, a Sent folder. Then, printing a markdown table of figures:

1. passwd-file lookups at 1,000 / 10,000 / 50,000 users: the landed code (read from git at --before) against the
   kept Userdb;
2. first `ftsd index -A` (wall, CPU, msg/s) and, with --baseline N, one user holding N of the same messages
   (the ratio of the two msg/s is what parallel users have to close);
3. no-op `ftsd index -A` through each userdb driver asked for (passwd-file; ldap: a real slapd started here);
4. `ftsd serve` with `--serve-users` users (the rest get an empty Maildir): time to /healthz 200 and to
   watcher_ready, /metrics scrape times, searches over random users (p50/p99), the server's RSS afterwards.

Everything lives in one temp dir, removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compare_common import _kb, med, pct, run_measured  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
_ARCHIVE = Path("corpus") / "spamassassin-ml4h" / "spamassassin-ml4h.maildir.tar.zst"
CORPUS = next((p for p in (REPO.parent / "shared" / _ARCHIVE, REPO.parents[1] / "shared" / _ARCHIVE) if p.exists()),
              REPO.parent / "shared" / _ARCHIVE)
DOMAIN = "scale.test"
WORDS = ["money", "linux", "free", "remove", "mailing", "server", "python", "business", "people", "order",
         "click", "software", "report", "internet", "please", "razor", "spamassassin", "debian"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def corpus_files(work: Path, source: str | None) -> list[Path]:
    root = Path(source) if source else None
    if root is None or not root.is_dir():
        target = work / "corpus"
        target.mkdir()
        subprocess.run(["tar", "-I", "zstd", "-xf", str(source or CORPUS), "-C", str(target)], check=True)
        root = target / "corpus-a"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


def mailbox_sizes(n: int, rng: random.Random, cap: int) -> list[int]:
    """Pareto(alpha 1.1, minimum 1): median ~2 messages, mean ~10, a few users in the hundreds."""
    return [min(cap, int(rng.paretovariate(1.1))) for _ in range(n)]


def make_user(maildir: Path, files: list[Path], half: bool = False) -> None:
    if half:
        inbox, sent = files[: len(files) // 2], files[len(files) // 2:]
    else:
        inbox, sent = (files, []) if len(files) <= 5 else (files[: len(files) * 3 // 4], files[len(files) * 3 // 4:])
    for box, chosen in ((maildir, inbox), (maildir / ".Sent", sent)):
        if box != maildir and not chosen:
            continue
        for sub in ("cur", "new", "tmp"):
            (box / sub).mkdir(parents=True, exist_ok=True)
        for path in chosen:
            os.link(path, box / "cur" / path.name)


def write_config(path: Path, work: Path, userdb: dict[str, str], port: int) -> Path:
    lines = [f'mail_location = "maildir:{work}/vmail/%d/%n:INDEX={work}/idx/%d/%n"', "[userdb]",
             *(f'{k} = "{v}"' for k, v in userdb.items()), "[server]", f'listen = "127.0.0.1:{port}"',
             f'socket = "{work}/ftsd.sock"', f'state_dir = "{work}/state"', 'log_level = "warning"'[0:0]]
    path.write_text("\n".join(line for line in lines if line) + "\n")
    return path


def ftsd(config: Path, command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "ftsd", command, "-c", str(config), *args]


def lookup_figures(work: Path, sizes: list[int], before: str) -> list[tuple[str, str]]:
    """ms per passwd-file lookup: the code at `before` (from git) and the kept Userdb of this tree."""
    from ftsd.settings import settings_from_dict
    from ftsd.userdb import open_userdb

    old = None
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{before}:ftsd/userdb.py"], capture_output=True,
                            text=True, check=False).stdout
    if source:
        spec = importlib.util.spec_from_loader("ftsd_userdb_before", loader=None)
        assert spec is not None
        old = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = old  # dataclasses look their module up
        exec(compile(source, f"{before}:ftsd/userdb.py", "exec"), old.__dict__)  # noqa: S102
    rows = []
    for n in sizes:
        path = work / f"passwd-{n}"
        path.write_text("".join(f"l{i:06d}@{DOMAIN}:{{PLAIN}}x:1000:1000::/srv/vmail/l{i:06d}::\n"
                                for i in range(n)))
        settings = settings_from_dict({"userdb": {"driver": "passwd-file", "args": str(path)}})
        rng = random.Random(n)
        names = [f"l{rng.randrange(n):06d}@{DOMAIN}" for _ in range(2000)]
        was = "-"
        if old is not None:
            k = max(5, min(200, 200_000 // n))
            start = time.perf_counter()
            for name in names[:k]:
                old.lookup_user(settings, name)
            was = f"{(time.perf_counter() - start) / k * 1000:.2f}"
        db = open_userdb(settings)
        start = time.perf_counter()
        db.names()
        listed = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        for name in names:
            db.lookup(name)
        now = (time.perf_counter() - start) / len(names) * 1000
        rows.append((f"passwd-file lookup, {n:,} users (ms): before / now (first list: {listed:.0f} ms)",
                     f"{was} / {now:.3f}"))
    return rows


def get(url: str, timeout: float = 30.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read()
    except OSError:
        return 0, b""


def post(url: str, body: Mapping[str, object]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def serve_figures(config: Path, port: int, users: list[str], serve_users: int, searches: int, rng: random.Random,
                  log: Path) -> list[tuple[str, str]]:
    base = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(ftsd(config, "serve", "--allow-root"), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    rows: list[tuple[str, str]] = []
    try:
        healthz = ready = None
        deadline = start + 600
        while time.perf_counter() < deadline and ready is None:
            status, health = get(base + "/healthz", timeout=5)
            now = time.perf_counter() - start
            if status == 200:
                healthz = healthz or now
                if json.loads(health).get("watcher_ready"):
                    ready = now
            if proc.poll() is not None:
                raise RuntimeError(f"ftsd serve exited: {log.read_text()[-2000:]}")
            time.sleep(0.02)
        mode = json.loads(get(base + "/healthz")[1]).get("watcher")
        rows.append((f"serve with {serve_users:,} users: /healthz 200 / watcher ready ({mode}) (s)",
                     f"{healthz:.2f} / {ready:.2f}" if healthz and ready else f"{healthz} / {ready}"))
        scrapes = []
        for _ in range(20):
            t = time.perf_counter()
            status, _ = get(base + "/metrics")
            scrapes.append((time.perf_counter() - t) * 1000)
            assert status == 200
        rows.append(("/metrics scrape p50 / max (ms)", f"{med(scrapes):.1f} / {max(scrapes):.1f}"))
        latencies, errors, hits = [], 0, 0
        for _ in range(searches):
            user = rng.choice(users)
            request = {"query": f"TEXT {rng.choice(WORDS)}",
                       "mailboxes": ["*"] if rng.random() < 0.3 else ["INBOX"]}
            t = time.perf_counter()
            status, reply = post(f"{base}/v1/users/{user}/search", request)
            latencies.append((time.perf_counter() - t) * 1000)
            if status != 200:
                errors += 1
            else:
                data = json.loads(reply)
                hits += sum(len(r["uids"]) for r in data["results"]) if "results" in data else len(data["uids"])
        rows.append((f"{searches} searches over random users: p50 / p99 (ms), errors, hits",
                     f"{med(latencies):.1f} / {pct(latencies, 99):.1f}, {errors}, {hits}"))
        rows.append(("ftsd serve RSS after the searches / peak (MB)",
                     f"{_kb(f'/proc/{proc.pid}/status', b'VmRSS:') / 1024:.0f} / "
                     f"{_kb(f'/proc/{proc.pid}/status', b'VmHWM:') / 1024:.0f}"))
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--serve-users", type=int, default=10000)
    parser.add_argument("--userdb", default="passwd-file,ldap")
    parser.add_argument("--searches", type=int, default=400)
    parser.add_argument("--baseline", type=int, default=0, help="messages of a one-user run to compare with")
    parser.add_argument("--cap", type=int, default=600, help="largest mailbox (messages)")
    parser.add_argument("--fixed", type=int, default=0,
                        help="every user gets this many messages, half in INBOX, half in Sent (issue 14's set-up)")
    parser.add_argument("--lookup-sizes", default="1000,10000,50000")
    parser.add_argument("--before", default="4487010", help="git revision of the code measured as 'before'")
    parser.add_argument("--corpus", help="the corpus .tar.zst or an extracted Maildir")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="ftsd-scale-users-"))
    work.chmod(0o755)
    rows: list[tuple[str, str]] = []
    slapd = None
    try:
        if args.lookup_sizes:
            rows += lookup_figures(work, [int(n) for n in args.lookup_sizes.split(",")], args.before)
            print("\n".join(f"{k}: {v}" for k, v in rows), flush=True)
        files = corpus_files(work, args.corpus)
        sizes = [args.fixed] * args.users if args.fixed else mailbox_sizes(args.users, rng, min(args.cap, len(files)))
        names = [f"u{i:05d}@{DOMAIN}" for i in range(args.users)]
        for name, size in zip(names, sizes, strict=True):
            make_user(work / "vmail" / DOMAIN / name.split("@")[0], rng.sample(files, size), bool(args.fixed))
        total = sum(sizes)
        ordered = sorted(sizes)
        rows.append(("users / messages / median / p90 / largest mailbox",
                     f"{args.users:,} / {total:,} / {med(sizes):.0f} / {pct(sizes, 90):.0f} / {ordered[-1]}"))
        passwd = work / "users"
        passwd.write_text("".join(f"{n}:{{PLAIN}}x:::::\n" for n in names))
        port = free_port()
        config = write_config(work / "ftsd.toml", work, {"driver": "passwd-file", "args": str(passwd)}, port)

        first = run_measured(ftsd(config, "index", "-A"), work / "index1.log", timeout_s=7200)
        if first.returncode != 0:
            print(first.output, file=sys.stderr)
        rows.append(("first index -A: wall / CPU (s), msg/s, exit",
                     f"{first.wall_s:.1f} / {first.cpu_s:.1f}, {total / first.wall_s:.0f}, {first.returncode}"))
        print(rows[-1], flush=True)
        if args.baseline:
            one = work / "vmail" / "baseline.test" / "one"
            make_user(one, rng.sample(files, min(args.baseline, len(files))))
            base_cfg = write_config(work / "base.toml", work, {"driver": "static"}, port)
            n_base = min(args.baseline, len(files))
            single = run_measured(ftsd(base_cfg, "index", "-u", "one@baseline.test"), work / "base.log",
                                  timeout_s=3600)
            rows.append((f"one user with {n_base:,} of the same messages: wall (s), msg/s; -A / one user",
                         f"{single.wall_s:.1f}, {n_base / single.wall_s:.0f}; "
                         f"{(total / first.wall_s) / (n_base / single.wall_s):.2f}"))
            print(rows[-1], flush=True)
        noop = run_measured(ftsd(config, "index", "-A"), work / "index2.log", timeout_s=3600)
        rows.append((f"no-op index -A, {args.users:,} users, passwd-file: wall / CPU (s)",
                     f"{noop.wall_s:.1f} / {noop.cpu_s:.1f}"))
        print(rows[-1], flush=True)
        if "ldap" in args.userdb:
            from tests.userdb.servers import Slapd, ldap_conf

            slapd = Slapd(work / "slapd")
            slapd.load(f"dn: uid={n},ou=people,dc=ftsd,dc=test\nobjectClass: account\nobjectClass: posixAccount\n"
                       f"uid: {n}\ncn: {n}\nuidNumber: 1000\ngidNumber: 1000\nhomeDirectory: /nonexistent\n"
                       "description: mail\n" for n in names)
            slapd.start()
            conf_ext = ldap_conf(slapd, work / "dovecot-ldap.conf.ext")
            ldap_cfg = write_config(work / "ldap.toml", work, {"driver": "ldap", "args": str(conf_ext)}, port)
            noop_ldap = run_measured(ftsd(ldap_cfg, "index", "-A"), work / "index3.log", timeout_s=3600)
            rows.append((f"no-op index -A, {args.users:,} users, ldap (real slapd): wall / CPU (s)",
                         f"{noop_ldap.wall_s:.1f} / {noop_ldap.cpu_s:.1f}"))
            print(rows[-1], flush=True)
        everyone = names + [f"e{i:05d}@{DOMAIN}" for i in range(max(0, args.serve_users - args.users))]
        for name in everyone[args.users:]:
            for sub in ("cur", "new", "tmp"):
                (work / "vmail" / DOMAIN / name.split("@")[0] / sub).mkdir(parents=True)
        passwd_all = work / "users-all"
        passwd_all.write_text("".join(f"{n}:{{PLAIN}}x:::::\n" for n in everyone))
        serve_cfg = write_config(work / "serve.toml", work, {"driver": "passwd-file", "args": str(passwd_all)},
                                 port)
        rows += serve_figures(serve_cfg, port, names, len(everyone), args.searches, rng, work / "serve.log")
    finally:
        if slapd is not None:
            slapd.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
    table = "| figure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    print(table)
    if args.output:
        header = (f"# bench/scale_users.py --users {args.users} --serve-users {args.serve_users} "
                  f"--baseline {args.baseline} --fixed {args.fixed} "
                  f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                  f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})\n\n")
        args.output.write_text(header + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
