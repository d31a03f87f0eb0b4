"""Settings from flags, the environment and config files, in that order of precedence.

Lookup order for each setting: an explicit value (a command-line flag), then the environment
(``VDC_MANAGE_DB`` ...), then ``$XDG_CONFIG_HOME/vdc-manage/config.toml``, then
``/etc/vdc-manage/config.toml``, then the built-in default. The config file is TOML::

    db = "postgresql://vdc@db.example/vdc"      # catalog URL
    [ssh]
    connect_timeout = 10                          # seconds
    known_hosts = "~/.ssh/known_hosts"
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdcmanage.errors import InvalidArgument

SYSTEM_CONFIG = Path("/etc/vdc-manage/config.toml")
DB_ENV = "VDC_MANAGE_DB"
CONFIG_ENV = "VDC_MANAGE_CONFIG"
COMPRESS_CHUNK_MIB = 256  # the compress step's chunks: at most this much is compressed again after a drop


def xdg_dir(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def user_config_path() -> Path:
    return xdg_dir("XDG_CONFIG_HOME", ".config") / "vdc-manage" / "config.toml"


def default_catalog_path() -> Path:
    return xdg_dir("XDG_DATA_HOME", ".local/share") / "vdc-manage" / "catalog.db"


def config_file_paths() -> list[Path]:
    """The config files consulted, most specific first. ``VDC_MANAGE_CONFIG`` replaces both."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return [Path(explicit).expanduser()]
    return [user_config_path(), SYSTEM_CONFIG]


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidArgument(f"Cannot read config file {path}: {exc.strerror}") from exc
    import tomllib  # ~3 ms; only paid when a config file exists

    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgument(f"Config file {path} is not valid TOML: {exc}") from exc


@dataclass
class Settings:
    """The merged settings a command runs with."""

    db_url: str
    db_url_source: str
    ssh: dict[str, Any] = field(default_factory=dict)
    importer: dict[str, Any] = field(default_factory=dict)  # the [import] table

    @property
    def connect_timeout(self) -> float:
        return float(self.ssh.get("connect_timeout", 10))

    @property
    def work_dir(self) -> Path:
        """Where imports keep their local work files (a compact VHD of the image: as big as its data)."""
        configured = self.importer.get("work_dir")
        if configured:
            return Path(str(configured)).expanduser()
        return xdg_dir("XDG_CACHE_HOME", ".cache") / "vdc-manage" / "work"

    @property
    def compress_chunk_bytes(self) -> int:
        """How much of the VHD each independent bzip2 stream of the compress step holds (what a dropped
        connection can cost at most): ``[import] compress_chunk_mib``."""
        mib = self.importer.get("compress_chunk_mib", COMPRESS_CHUNK_MIB)
        if isinstance(mib, bool) or not isinstance(mib, int) or mib < 1:
            raise InvalidArgument(f"[import] compress_chunk_mib must be a whole number of MiB (1 or more), not {mib!r}")
        return mib * 1024 * 1024


def merged_file_config() -> tuple[dict[str, Any], dict[str, Path]]:
    """Config files merged key by key (the user's file wins over the system one), and where each key came from."""
    merged: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    for path in reversed(config_file_paths()):
        data = read_config_file(path)
        for key, value in data.items():
            origin[key] = path
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged, origin


def load_settings(db_flag: str | None = None) -> Settings:
    file_config, origin = merged_file_config()
    ssh, importer = table(file_config, "ssh"), table(file_config, "import")
    if db_flag:
        return Settings(db_flag, "--db", ssh, importer)
    if os.environ.get(DB_ENV):
        return Settings(os.environ[DB_ENV], DB_ENV, ssh, importer)
    if file_config.get("db"):
        return Settings(str(file_config["db"]), str(origin["db"]), ssh, importer)
    return Settings(f"sqlite://{default_catalog_path()}", "default", ssh, importer)


def table(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name, {})
    if not isinstance(value, dict):
        raise InvalidArgument(f"Config key '{name}' must be a table ([{name}])")
    return value
