"""SSH connection options from the settings (config file ``[ssh]`` table), shared by the CLI and workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vdcmanage.config import Settings, load_settings
from vdcmanage.errors import InvalidArgument

if TYPE_CHECKING:
    from vdcmanage.remote.ssh import ConnectOptions


def connect_options(
    settings: Settings | None = None,
    *,
    timeout: float | None = None,
    accept_new_host_key: bool = False,
    passphrase_prompt: Callable[[str], str | None] | None = None,
) -> ConnectOptions:
    from vdcmanage.remote.ssh import ConnectOptions

    settings = settings or load_settings()
    if timeout is not None and timeout <= 0:
        raise InvalidArgument("--connect-timeout must be a positive number of seconds")
    known_hosts = settings.ssh.get("known_hosts")
    return ConnectOptions(
        connect_timeout=timeout if timeout is not None else settings.connect_timeout,
        accept_new_host_key=accept_new_host_key,
        passphrase_prompt=passphrase_prompt,
        known_hosts_files=[Path(p).expanduser() for p in known_hosts.split()] if isinstance(known_hosts, str) else None,
    )
