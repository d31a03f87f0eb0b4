"""Host key trust: OpenSSH known_hosts files plus the key a host record carries in the catalog.

Pure Python (no paramiko), so the policy is tested on its own. The rules, as OpenSSH's
``StrictHostKeyChecking`` applies them:

- the offered key is among the known keys for that host name: trusted;
- the host has known keys but not this one (any type): **changed**, always refused, with both
  fingerprints shown. (OpenSSH would accept-new a key of a type it has never seen for the host;
  we refuse that too: a hypervisor is not a host to take chances with.)
- no known key at all: unknown, refused unless the operator asked to accept a new key;
- a key listed under ``@revoked``: refused.

Host names in known_hosts: plain (``host``, ``[host]:port`` for ports other than 22), comma lists,
``*``/``?`` wildcards, ``!negations`` and hashed entries (``|1|salt|hash``, ``HashKnownHosts yes``).
``@cert-authority`` lines are skipped: paramiko does not verify host certificates.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vdcmanage.remote.errors import HostKeyChanged, HostKeyUnknown

CATALOG_SOURCE = "the catalog"


@dataclass(frozen=True)
class PublicKey:
    key_type: str  # e.g. ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256
    blob: bytes  # the key's wire encoding (what the base64 in known_hosts decodes to)

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """``<type> <base64> [comment]`` as in known_hosts (after the host field) or ``*.pub`` files."""
        fields = text.split()
        if len(fields) < 2:
            raise ValueError("expected '<key type> <base64 key>'")
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"the key is not valid base64: {exc}") from exc
        if not blob_names_type(blob, fields[0]):
            raise ValueError(f"the key data is not of type {fields[0]}")
        return cls(fields[0], blob)

    @property
    def line(self) -> str:
        return f"{self.key_type} {base64.b64encode(self.blob).decode('ascii')}"

    @property
    def fingerprint(self) -> str:
        """OpenSSH's ``SHA256:<base64 without padding>``, as ``ssh-keygen -lf`` prints it."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    @property
    def label(self) -> str:
        """``ED25519 SHA256:...``: what OpenSSH shows the operator."""
        return f"{short_type(self.key_type)} {self.fingerprint}"


def blob_names_type(blob: bytes, key_type: str) -> bool:
    """The wire encoding starts with the length-prefixed type name; a mismatch means a corrupt line."""
    if len(blob) < 4:
        return False
    length = int.from_bytes(blob[:4], "big")
    return blob[4 : 4 + length] == key_type.encode("ascii", "replace")


def short_type(key_type: str) -> str:
    if key_type == "ssh-ed25519":
        return "ED25519"
    if key_type == "ssh-rsa":
        return "RSA"
    if key_type.startswith("ecdsa-sha2-"):
        return "ECDSA"
    return key_type.upper()


def host_key_file(key_type: str) -> str:
    """Where sshd keeps its public host key of that type, for the operator to compare on the console."""
    name = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}.get(key_type, "ecdsa" if key_type.startswith("ecdsa") else "*")
    return f"/etc/ssh/ssh_host_{name}_key.pub"


@dataclass(frozen=True)
class KnownKey:
    key: PublicKey
    source: str  # "/root/.ssh/known_hosts:3" or "the catalog"
    revoked: bool = False


def host_key_name(hostname: str, port: int) -> str:
    """The name OpenSSH files a host's key under."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def matches_hashed(pattern: str, name: str) -> bool:
    try:
        _, magic, salt_b64, hash_b64 = pattern.split("|")
        if magic != "1":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), expected)


def wildcard_match(pattern: str, name: str) -> bool:
    """OpenSSH's host patterns: ``*`` and ``?`` are the only wildcards (``[`` is literal, as in ``[host]:port``)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None


def host_field_matches(field: str, name: str) -> bool:
    """A known_hosts host field (comma list, wildcards, negations, or one hashed name) against ``name``."""
    name = name.lower()
    if field.startswith("|"):
        return matches_hashed(field, name)
    matched = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if wildcard_match(pattern.lower(), name):
            if negated:
                return False
            matched = True
    return matched


def parse_line(line: str, name: str, source: str) -> KnownKey | None:
    """The key a known_hosts line gives for host ``name``, if the line is about that host."""
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    revoked = False
    if fields[0].startswith("@"):
        if fields[0] != "@revoked":
            return None  # @cert-authority: certificates are not supported by paramiko
        revoked = True
        fields = fields[1:]
    if len(fields) < 3 or not host_field_matches(fields[0], name):
        return None
    try:
        key = PublicKey.parse(" ".join(fields[1:3]))
    except ValueError:
        return None  # OpenSSH skips lines it cannot parse, too
    return KnownKey(key, source, revoked)


def known_keys(name: str, files: Iterable[Path]) -> list[KnownKey]:
    """Every key the given known_hosts files list for ``name`` (a missing file lists none)."""
    found: list[KnownKey] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            entry = parse_line(line, name, f"{path}:{number}")
            if entry is not None:
                found.append(entry)
    return found


def catalog_key(line: str | None) -> list[KnownKey]:
    if not line:
        return []
    try:
        return [KnownKey(PublicKey.parse(line), CATALOG_SOURCE)]
    except ValueError:
        return []


@dataclass(frozen=True)
class Verdict:
    """How an offered host key was trusted: ``source`` of the matching entry, or ``new`` if accepted now."""

    key: PublicKey
    source: str | None
    new: bool = False


def verify(offered: PublicKey, known: Sequence[KnownKey], where: str, *, accept_new: bool, remove_hint: str) -> Verdict:
    """Trust ``offered`` or raise HostKeyUnknown / HostKeyChanged. ``where`` names the host in messages."""
    if any(k.revoked and k.key == offered for k in known):
        raise HostKeyChanged(
            f"Host key of {where} ({offered.label}) is marked @revoked in known_hosts; connection refused",
            offered.fingerprint,
            [],
        )
    trusted = [k for k in known if not k.revoked]
    for entry in trusted:
        if entry.key == offered:
            return Verdict(offered, entry.source)
    if trusted:
        expected = ", ".join(f"{k.key.label} (in {k.source})" for k in trusted)
        raise HostKeyChanged(
            f"HOST KEY CHANGED for {where}: it offers {offered.label} but {expected} is recorded. "
            f"Someone could be intercepting the connection (man-in-the-middle), or the host was reinstalled. "
            f"Connection refused. If the change is expected, verify the new key on the host's console, "
            f"then {remove_hint}",
            offered.fingerprint,
            [k.key.fingerprint for k in trusted],
        )
    if accept_new:
        return Verdict(offered, None, new=True)
    raise HostKeyUnknown(
        f"Host key of {where} is not known ({offered.label}). Compare it with the one on the host's console "
        f"(ssh-keygen -lf {host_key_file(offered.key_type)}), then add it to ~/.ssh/known_hosts or "
        f"record it with --accept-new-host-key",
        offered.fingerprint,
    )
