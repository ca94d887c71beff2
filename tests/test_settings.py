from pathlib import Path

import pytest

from ftsd.cli import main
from ftsd.errors import ConfigError
from ftsd.settings import Settings, config_lines, load_settings


def test_defaults_and_overrides(tmp_path: Path):
    cfg = tmp_path / "ftsd.toml"
    cfg.write_text('mail_location = "maildir:vmail/%d/%n"\n[fts]\npartial = 2\nautoindex = "no"\n')
    s = load_settings(cfg)
    assert s.fts.partial == 2 and s.fts.full == 20 and s.fts.autoindex is False
    assert s.resolve("vmail") == (tmp_path / "vmail").resolve()
    assert config_lines(s) == ['mail_location = "maildir:vmail/%d/%n"', "[fts]", "partial = 2", "autoindex = false"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus = 1\n", "unknown key bogus"),
        ("[fts]\npartal = 3\n", "unknown key fts.partal"),
        ("[fts]\npartial = -1\n", "fts.partial"),
        ("[fts]\npartial = 5\nfull = 4\n", "fts.partial must be"),
        ('mail_location = "mbox:~/mail"\n', "maildir"),
        ("[userdb]\ndriver = \"nis\"\n", "userdb.driver"),
        ("[userdb]\ndriver = \"ldap\"\n", "userdb.args"),
        ("[limits]\nsolr_interim_s = -1\n", "limits.solr_interim_s"),
        ("[fts\n", "ftsd.toml"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str):
    cfg = tmp_path / "ftsd.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(cfg)
    assert str(cfg) in str(err.value)


def test_config_error_exit_code_78(tmp_path: Path, capsys):
    cfg = tmp_path / "ftsd.toml"
    cfg.write_text("[fts]\nnope = 1\n")
    assert main(["status", "-c", str(cfg)]) == 78
    assert "unknown key fts.nope" in capsys.readouterr().err
    assert main(["status", "-c", str(tmp_path / "missing.toml")]) == 78


def test_env_variable_names_config(tmp_path: Path):
    cfg = tmp_path / "x.toml"
    cfg.write_text('log_level = "debug"\n')
    assert load_settings(None, {"FTSD_CONFIG": str(cfg)}).log_level == "debug"


def test_every_setting_documented():
    from dataclasses import fields, is_dataclass

    docs = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    for f in fields(Settings):
        if f.name == "base_dir":
            continue
        assert f.metadata.get("doc"), f.name
        default = getattr(Settings(), f.name)
        if is_dataclass(default):
            for g in fields(default):
                assert g.metadata.get("doc") and f"`{f.name}.{g.name}`" in docs, f"{f.name}.{g.name}"
        else:
            assert f"`{f.name}`" in docs, f.name


def test_config_all_is_a_complete_config_file(tmp_path: Path, capsys):
    """`ftsd config --all` prints every setting with its doc; read back, it is the same configuration."""
    cfg = tmp_path / "ftsd.toml"
    cfg.write_text('mail_location = "maildir:/srv/mail/%d/%n"\n[fts]\npartial = 2\n')
    assert main(["config", "--all", "-c", str(cfg)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n# ") >= 10  # the docs come along
    again = tmp_path / "again.toml"
    again.write_text(printed)
    assert load_settings(again) == load_settings(cfg)
