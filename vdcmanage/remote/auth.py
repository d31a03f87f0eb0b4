"""Public-key login in OpenSSH's spirit: the configured key file, then the ssh-agent, then ``~/.ssh/id_*``.

Passwords are never tried. An encrypted key file is unlocked by the agent (if it holds the key) or
by the caller's prompt callback; the passphrase lives only in a local variable while the key loads.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vdcmanage.remote import known_hosts
from vdcmanage.remote.errors import AuthFailed, ConnectTimeout
from vdcmanage.remote.target import Endpoint

if TYPE_CHECKING:
    import paramiko

# Asked for a key file's passphrase (given the path); None or "" means "do not use this key".
PassphrasePrompt = Callable[[str], str | None]


class Authenticator:
    """Public-key login in OpenSSH's spirit: the configured key file, then the agent, then ~/.ssh/id_*."""

    def __init__(
        self, transport: paramiko.Transport, endpoint: Endpoint, prompt: PassphrasePrompt | None, where: str
    ) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.prompt = prompt
        self.where = where
        self.tried: list[str] = []
        self.notes: list[str] = []
        self.offered: set[bytes] = set()

    def run(self, deadline: float) -> None:
        import paramiko

        try:
            agent = paramiko.Agent()
        except paramiko.SSHException as exc:
            raise AuthFailed(f"The ssh-agent at $SSH_AUTH_SOCK does not answer: {exc}") from exc
        try:
            for key, label in self.candidates(agent):
                if time.monotonic() >= deadline:
                    raise ConnectTimeout(f"Timed out authenticating to {self.where}")
                if self.try_key(key, label):
                    return
        finally:
            agent.close()
        raise AuthFailed(self.failure_message())

    def candidates(self, agent: paramiko.Agent) -> Iterator[tuple[paramiko.PKey, str]]:
        agent_keys = list(agent.get_keys())
        files = self.endpoint.identity_files
        if self.endpoint.explicit_identity:
            yield from self.file_keys(files, agent_keys, required=True)
        for key in agent_keys:
            yield key, f"agent key {fingerprint_label(key)}"
        if not self.endpoint.explicit_identity:
            yield from self.file_keys(files, agent_keys, required=False)

    def file_keys(
        self, files: Sequence[Path], agent_keys: Sequence[paramiko.PKey], *, required: bool
    ) -> Iterator[tuple[paramiko.PKey, str]]:
        for path in files:
            if not path.is_file():
                if required:
                    raise AuthFailed(f"Key file {path} does not exist (or is not a file)")
                continue
            key = self.load_key(path, agent_keys)
            if key is not None:
                yield key, f"key file {path} ({fingerprint_label(key)})"

    def load_key(self, path: Path, agent_keys: Sequence[paramiko.PKey]) -> paramiko.PKey | None:
        import paramiko

        from vdcmanage.privatefiles import ensure_private

        ensure_private(path, "SSH key file")
        try:
            return paramiko.PKey.from_path(path)
        except paramiko.PasswordRequiredException:
            pass
        except TypeError as exc:  # cryptography's way of saying "encrypted" for OpenSSH-format keys
            if "password" not in str(exc).lower():
                raise
        except (paramiko.SSHException, ValueError, OSError) as exc:
            self.notes.append(f"{path} is not a private key paramiko can read ({exc})")
            return None
        if public_key_in_agent(path, agent_keys):
            return None  # the agent holds it unlocked and is tried anyway
        passphrase = self.prompt(str(path)) if self.prompt is not None else None
        if not passphrase:
            self.notes.append(f"{path} is encrypted: load it into ssh-agent (ssh-add {shlex.quote(str(path))})")
            return None
        try:
            return paramiko.PKey.from_path(path, password=passphrase.encode())
        except (paramiko.SSHException, ValueError) as exc:
            self.notes.append(f"{path}: the passphrase did not unlock it ({exc})")
            return None
        finally:
            del passphrase

    def try_key(self, key: paramiko.PKey, label: str) -> bool:
        import paramiko

        blob = key.asbytes()
        if blob in self.offered:
            return False
        self.offered.add(blob)
        try:
            self.transport.auth_publickey(self.endpoint.user, key)
        except paramiko.BadAuthenticationType as exc:
            raise AuthFailed(
                f"{self.where} does not accept public keys for {self.endpoint.user} "
                f"(it allows: {', '.join(exc.allowed_types) or 'nothing'})"
            ) from exc
        except paramiko.AuthenticationException:
            self.tried.append(label)
            return False
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.tried.append(label)
            if not self.transport.is_active():
                raise AuthFailed(
                    f"{self.where} closed the connection during authentication after {len(self.tried)} key(s) "
                    f"({'; '.join(self.tried)}); too many keys offered (MaxAuthTries)? Give --key-file"
                ) from exc
            return False
        return bool(self.transport.is_authenticated())

    def failure_message(self) -> str:
        who = self.endpoint.describe()
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        if not self.tried:
            return (
                f"No SSH key to offer to {who}{notes}: give --key-file, load a key into ssh-agent, "
                f"or create ~/.ssh/id_ed25519"
            )
        return f"Authentication refused by {who}: tried {'; '.join(self.tried)}{notes}"


def fingerprint_label(key: paramiko.PKey) -> str:
    return known_hosts.PublicKey(key.get_name(), key.asbytes()).label


def public_key_in_agent(path: Path, agent_keys: Sequence[paramiko.PKey]) -> bool:
    """Whether the agent holds the key whose public half sits next to ``path`` (``<path>.pub``)."""
    try:
        public = known_hosts.PublicKey.parse(Path(f"{path}.pub").read_text(encoding="ascii", errors="replace"))
    except (OSError, ValueError):
        return False
    return any(k.asbytes() == public.blob for k in agent_keys)

