"""Single-node mode needs no PostgreSQL: psycopg is never imported without `cluster.dsn`, and the cluster
commands say what is missing."""

from __future__ import annotations

import subprocess
import sys

from ftsd.cli import main
from tests.cluster.nodes import REPO


def test_single_node_never_imports_psycopg(make_config):
    config = make_config()
    code = ("import sys; from ftsd.api.app import create_app; from ftsd.settings import load_settings; "
            f"create_app(load_settings({str(config)!r})); import ftsd.cli; "
            "assert 'psycopg' not in sys.modules, 'psycopg imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_cluster_status_without_dsn_is_a_config_error(make_config, capsys):
    assert main(["cluster", "status", "-c", str(make_config())]) == 78
    assert "cluster.dsn is not set" in capsys.readouterr().err
