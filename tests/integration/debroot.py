"""A cached Debian 13 (trixie) root with Dovecot 2.4, and commands run inside it.

`ensure_root()` builds the root once with `debootstrap --variant=minbase` from the Debian mirror this machine's apt
already uses, installs PACKAGES with `chroot ROOT apt-get`, and writes a stamp (JSON: suite, mirror, installed
versions, build time) last; a root without a matching stamp is rebuilt. Builds are serialised by a lock file, made in a
temporary directory and renamed into place, so an interrupted build never leaves a half root that looks usable.
The cache lives outside the clone: $FTSD_TEST_CACHE, default /var/cache/ftsd-tests.

`in_root(root, binds, argv)` is the argv that runs a command inside the root in a private mount namespace
(`unshare --mount`): /proc, /dev and a fresh /tmp are mounted there and every bind directory appears at its own path,
so paths in configurations are the same inside and out. The mounts vanish with the namespace's last process: nothing
is ever left mounted on the cached root, even after a crash. The network namespace is shared, so 127.0.0.1 is the
host's loopback.

Run by hand (as root): `python -m tests.integration.debroot` builds or checks the root and prints its stamp.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

SUITE = "trixie"
PACKAGES = ("dovecot-core", "dovecot-imapd", "dovecot-solr")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
STAMP_VERSION = 1


class RootError(RuntimeError):
    """The root cannot be built or used here; the message says why and what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("FTSD_TEST_CACHE") or "/var/cache/ftsd-tests")


def root_path() -> Path:
    return cache_dir() / f"{SUITE}-root"


def stamp_path(root: Path) -> Path:
    return root.with_name(root.name + ".stamp.json")


def _source_entries() -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of every apt source of this machine, one-line and deb822 formats."""
    base = Path("/etc/apt")
    lists = [base / "sources.list", *sorted((base / "sources.list.d").glob("*.list"))]
    for path in lists:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    yield words[1], [words[2]]
    for path in sorted((base / "sources.list.d").glob("*.sources")):
        with contextlib.suppress(OSError):
            for stanza in re.split(r"\n\s*\n", path.read_text()):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                    for uri in fields.get("uris", "").split():
                        yield uri, fields.get("suites", "").split()


def debian_mirror() -> str:
    """The Debian archive URI this machine's apt uses (not the security archive), or $FTSD_DEBIAN_MIRROR."""
    if override := os.environ.get("FTSD_DEBIAN_MIRROR"):
        return override.rstrip("/")
    release_suites = re.compile(r"^(bookworm|trixie|forky|sid|stable|testing|unstable|oldstable)$")
    for uri, suites in _source_entries():
        if uri.rstrip("/").endswith("/debian") and any(release_suites.match(s) for s in suites):
            return uri.rstrip("/")
    raise RootError("no Debian archive in /etc/apt/sources.list(.d): set FTSD_DEBIAN_MIRROR=http://.../debian")


def read_stamp(root: Path) -> dict[str, object] | None:
    try:
        stamp = json.loads(stamp_path(root).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("stamp_version") != STAMP_VERSION or not root.is_dir():
        return None
    versions = stamp.get("packages")
    if stamp.get("suite") != SUITE or not isinstance(versions, dict) or set(PACKAGES) - set(versions):
        return None
    return stamp


def missing_tools() -> str | None:
    """Why a root cannot be built or entered here, or None."""
    if os.geteuid() != 0:
        return "building and entering the Debian 13 root needs root (debootstrap, unshare --mount, chroot)"
    for tool in ("debootstrap", "unshare", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: apt-get install -y debootstrap util-linux (./scripts/setup does it)"
    if not KEYRING.is_file():
        return f"{KEYRING} is missing: apt-get install -y debian-archive-keyring"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN
        return f"unshare --mount is not allowed here ({probe.stderr.strip()}): run the tests on a VM or as real root"
    return None


def _run(argv: Sequence[str], log: Path, what: str, timeout: float) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {shlex.join(argv)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(list(argv), stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"})
        except subprocess.TimeoutExpired:
            raise RootError(f"{what} took more than {timeout:.0f} s; see {log}") from None
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RootError(f"{what} failed (exit {done.returncode}); see {log}\n{tail}")


def _remove(path: Path) -> None:
    """rm -rf of a root or a build directory, after unmounting what an interrupted debootstrap left mounted there
    (its /proc, /sys): rmtree must never walk into a mounted file system."""
    prefix = str(path.resolve()) + "/"
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def _installed_versions(root: Path) -> dict[str, str]:
    out = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *PACKAGES],
                         capture_output=True, text=True, check=False).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def _build(root: Path, log: Path) -> dict[str, object]:
    mirror = debian_mirror()
    for stale in root.parent.glob(f"{root.name}.build-*"):  # left by an interrupted build (we hold the lock)
        _remove(stale)
    work = root.with_name(f"{root.name}.build-{os.getpid()}")
    started = time.monotonic()
    _run(["debootstrap", "--variant=minbase", f"--keyring={KEYRING}", SUITE, str(work), mirror], log,
         f"debootstrap {SUITE} from {mirror}", 1500)
    bootstrap_s = time.monotonic() - started
    # Package scripts must not start daemons inside the root (invoke-rc.d asks policy-rc.d; 101 = not allowed).
    policy = work / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    mtab = work / "etc/mtab"  # minbase has none; Dovecot's programs read it (doveconf: "setmntent(/etc/mtab) failed")
    if not mtab.is_symlink() and not mtab.exists():
        mtab.symlink_to("../proc/self/mounts")
    _run(["chroot", str(work), "apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES], log,
         f"apt-get install {' '.join(PACKAGES)} in the {SUITE} root", 600)
    _run(["chroot", str(work), "apt-get", "clean"], log, "apt-get clean", 120)
    versions = _installed_versions(work)
    if set(PACKAGES) - set(versions):
        raise RootError(f"{', '.join(sorted(set(PACKAGES) - set(versions)))} not installed in {work}; see {log}")
    stamp: dict[str, object] = {
        "stamp_version": STAMP_VERSION, "suite": SUITE, "mirror": mirror, "packages": versions,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "debootstrap_s": round(bootstrap_s, 1), "build_s": round(time.monotonic() - started, 1),
    }
    _remove(root)
    work.rename(root)
    tmp = stamp_path(root).with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp, indent=1) + "\n")
    tmp.rename(stamp_path(root))  # last: only a complete root has a stamp
    return stamp


def ensure_root(root: Path | None = None) -> tuple[Path, dict[str, object]]:
    """The root with its stamp, built first when it is missing or its stamp does not match."""
    if why := missing_tools():
        raise RootError(why)
    root = root or root_path()
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second session waits for the first build instead of doing its own
        stamp = read_stamp(root)
        if stamp is None:
            log = root.with_name(root.name + ".build.log")
            log.write_text("")
            print(f"building the Debian {SUITE} root in {root} (log: {log})", file=sys.stderr)
            stamp = _build(root, log)
            print(f"built in {stamp['build_s']} s: {stamp['packages']}", file=sys.stderr)
        return root, stamp


def in_root(root: Path, binds: Sequence[Path], argv: Sequence[str]) -> list[str]:
    """argv running `argv` chrooted into `root` in a private mount namespace with `binds` at their own paths."""
    mounts = [f"mount -t proc proc {shlex.quote(str(root / 'proc'))}",
              f"mount --bind /dev {shlex.quote(str(root / 'dev'))}",
              f"mount -t tmpfs -o mode=1777 tmpfs {shlex.quote(str(root / 'tmp'))}"]
    for path in binds:
        inside = shlex.quote(str(root / Path(path).resolve().relative_to("/")))
        mounts.append(f"mkdir -p {inside} && mount --bind {shlex.quote(str(Path(path).resolve()))} {inside}")
    script = " && ".join([*mounts, f'exec chroot {shlex.quote(str(root))} "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "in-root", *argv]


def main() -> int:
    try:
        root, stamp = ensure_root()
    except RootError as e:
        print(f"debroot: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"root": str(root), **stamp}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
