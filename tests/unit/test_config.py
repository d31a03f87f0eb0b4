"""Settings precedence and catalog URL parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from vdcmanage.catalog.db import parse_catalog_url
from vdcmanage.config import load_settings
from vdcmanage.errors import InvalidArgument


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_default_is_sqlite_under_xdg_data_home(isolated_home: Path) -> None:
    settings = load_settings()
    assert settings.db_url == f"sqlite://{isolated_home}/.local/share/vdc-manage/catalog.db"
    assert settings.db_url_source == "default"


def test_flag_beats_env_beats_file(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(isolated_home / "c.toml", 'db = "sqlite:///from/file.db"\n[ssh]\nconnect_timeout = 3\n')
    monkeypatch.setenv("VDC_MANAGE_CONFIG", str(config))
    assert load_settings().db_url == "sqlite:///from/file.db"
    assert load_settings().connect_timeout == 3.0
    monkeypatch.setenv("VDC_MANAGE_DB", "sqlite:///from/env.db")
    assert load_settings().db_url == "sqlite:///from/env.db"
    assert load_settings("sqlite:///from/flag.db").db_url == "sqlite:///from/flag.db"


def test_user_config_beats_system_config(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VDC_MANAGE_CONFIG")
    system = write(isolated_home / "etc/config.toml", 'db = "sqlite:///system.db"\n[ssh]\nconnect_timeout = 7\n')
    monkeypatch.setattr("vdcmanage.config.SYSTEM_CONFIG", system)
    assert load_settings().db_url == "sqlite:///system.db"
    write(isolated_home / ".config/vdc-manage/config.toml", 'db = "sqlite:///user.db"\n')
    settings = load_settings()
    assert settings.db_url == "sqlite:///user.db"
    assert settings.connect_timeout == 7.0  # keys the user file does not set still come from /etc


def test_broken_config_file_is_refused_clearly(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(isolated_home / "bad.toml", "db = \n")
    monkeypatch.setenv("VDC_MANAGE_CONFIG", str(config))
    with pytest.raises(InvalidArgument, match="not valid TOML"):
        load_settings()


def test_compress_chunk_size_default_configured_and_refused(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().compress_chunk_bytes == 256 * 1024 * 1024
    config = write(isolated_home / "c.toml", "[import]\ncompress_chunk_mib = 4\n")
    monkeypatch.setenv("VDC_MANAGE_CONFIG", str(config))
    assert load_settings().compress_chunk_bytes == 4 * 1024 * 1024
    for bad in ("0", "-1", "1.5", '"64"', "true"):
        config.write_text(f"[import]\ncompress_chunk_mib = {bad}\n")
        with pytest.raises(InvalidArgument, match="compress_chunk_mib must be a whole number of MiB"):
            load_settings().compress_chunk_bytes  # noqa: B018


@pytest.mark.parametrize(
    ("url", "scheme", "path", "host", "port", "user"),
    [
        ("sqlite:///var/lib/vdc/catalog.db", "sqlite", "/var/lib/vdc/catalog.db", None, None, None),
        ("sqlite:////var/lib/vdc/catalog.db", "sqlite", "/var/lib/vdc/catalog.db", None, None, None),
        ("sqlite:///my%20dir/c.db", "sqlite", "/my dir/c.db", None, None, None),
        ("postgresql://vdc:s3cret@db.example:6432/catalog", "postgresql", "catalog", "db.example", 6432, "vdc"),
        ("postgres://db/catalog", "postgresql", "catalog", "db", None, None),
        ("mysql://root@127.0.0.1:3306/test", "mysql", "test", "127.0.0.1", 3306, "root"),
        ("mariadb://root@h/test", "mysql", "test", "h", None, "root"),
    ],
)
def test_parse_catalog_urls(url: str, scheme: str, path: str, host: str, port: int, user: str) -> None:
    parsed = parse_catalog_url(url)
    assert (parsed.scheme, parsed.path, parsed.host, parsed.port, parsed.user) == (scheme, path, host, port, user)


def test_redacted_url_hides_the_password() -> None:
    parsed = parse_catalog_url("postgresql://vdc:s3cret@db/catalog")
    assert parsed.password == "s3cret"
    assert "s3cret" not in parsed.redacted()


@pytest.mark.parametrize(
    "url", ["oracle://x/y", "postgresql://host/", "sqlite://relative.db", "mysql://h:99999/db", "sqlite:x"]
)
def test_bad_catalog_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_catalog_url(url)
