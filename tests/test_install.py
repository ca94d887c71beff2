"""Production install (scripts/install) into a temporary root, and the shipped units' privileges."""

from __future__ import annotations

import configparser
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("name", ["ftsd.service", "ftsd-optimize.service"])
def test_units_run_as_the_mail_user_with_a_private_umask(name: str) -> None:
    unit = _unit(REPO / "contrib" / name)["Service"]
    assert unit["User"] == "vmail" and unit["Group"] == "vmail" and "SupplementaryGroups" not in unit
    assert unit["UMask"] == "0077"
    assert unit["ExecStart"].startswith("/usr/local/bin/ftsd ")
    assert unit["NoNewPrivileges"] == "yes" and unit["ProtectSystem"] == "strict"
    assert unit["CapabilityBoundingSet"] == ""


@pytest.mark.slow
def test_install_into_a_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = subprocess.run([str(REPO / "scripts" / "install"), "--root", str(root)], capture_output=True,
                            text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr
    assert "systemctl enable --now ftsd.service ftsd-optimize.timer" in result.stderr
    cfg = (root / "opt" / "ftsd" / "pyvenv.cfg").read_text()
    assert "home = /usr/bin" in cfg  # the system Python, not a developer's
    ftsd = root / "usr" / "local" / "bin" / "ftsd"
    assert os.path.realpath(ftsd) == str(root / "opt" / "ftsd" / "bin" / "ftsd")
    where = subprocess.run([str(root / "opt" / "ftsd" / "bin" / "python"), "-c", "import ftsd; print(ftsd.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(str(root / "opt" / "ftsd" / "lib")), where  # installed, not an editable checkout
    conf = root / "etc" / "ftsd" / "ftsd.toml"
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    out = subprocess.run([str(ftsd), "-c", str(conf), "config"], capture_output=True, text=True, check=True).stdout
    assert 'mail_uid = "vmail"' in out
    for unit in ("ftsd.service", "ftsd-optimize.service", "ftsd-optimize.timer"):
        assert (root / "etc" / "systemd" / "system" / unit).read_text() == (REPO / "contrib" / unit).read_text()
    for state in ("var/lib/ftsd", "srv/indexes"):
        assert oct((root / state).stat().st_mode & 0o777) == "0o700"
    assert (root / "usr" / "share" / "doc" / "ftsd" / "install.md").is_file()
    conf.write_text(conf.read_text() + "\n# local edit\n")  # a second run keeps the admin's configuration
    again = subprocess.run([str(REPO / "scripts" / "install"), "--root", str(root), "--mail-user", "mailer"],
                           capture_output=True, text=True, timeout=900, check=False)
    assert again.returncode == 0, again.stderr
    assert conf.read_text().endswith("# local edit\n")
    assert "User=mailer" in (root / "etc" / "systemd" / "system" / "ftsd.service").read_text()
