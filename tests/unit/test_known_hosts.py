"""Host key trust rules (vdcmanage.remote.known_hosts), on real ssh-keygen keys and known_hosts files."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
from pathlib import Path

import pytest

from vdcmanage.remote.errors import HostKeyChanged, HostKeyUnknown
from vdcmanage.remote.known_hosts import (
    CATALOG_SOURCE,
    PublicKey,
    catalog_key,
    host_field_matches,
    host_key_name,
    known_keys,
    verify,
)


def new_key(tmp_path: Path, name: str, key_type: str = "ed25519") -> PublicKey:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(path)], check=True)
    return PublicKey.parse(Path(f"{path}.pub").read_text())


def test_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path) -> None:
    key = new_key(tmp_path, "k")
    printed = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True).stdout
    assert printed.split()[1] == key.fingerprint
    assert key.label == f"ED25519 {key.fingerprint}"
    assert new_key(tmp_path, "r", "rsa").label.startswith("RSA SHA256:")


def test_public_key_parse_refuses_garbage() -> None:
    for bad in ("", "ssh-ed25519", "ssh-ed25519 !!!", "ssh-rsa " + base64.b64encode(b"\0\0\0\x0bssh-ed25519").decode()):
        with pytest.raises(ValueError):
            PublicKey.parse(bad)


def test_host_names_and_patterns() -> None:
    assert host_key_name("10.0.0.5", 22) == "10.0.0.5"
    assert host_key_name("10.0.0.5", 2222) == "[10.0.0.5]:2222"
    assert host_field_matches("[127.0.0.1]:2222", "[127.0.0.1]:2222")  # brackets are literal
    assert not host_field_matches("[127.0.0.1]:2222", "1")
    assert host_field_matches("xen1,xen2", "XEN2")
    assert host_field_matches("*.example.org", "xen1.example.org")
    assert host_field_matches("xen?", "xen7") and not host_field_matches("xen?", "xen10")
    assert not host_field_matches("*.example.org,!bad.example.org", "bad.example.org")


def hashed(name: str) -> str:
    salt = os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_known_hosts_files_plain_hashed_revoked_and_comments(tmp_path: Path) -> None:
    a, b, c = new_key(tmp_path, "a"), new_key(tmp_path, "b"), new_key(tmp_path, "c")
    first, second = tmp_path / "known_hosts", tmp_path / "known_hosts2"
    first.write_text(f"# comment\n\nother {c.line}\n{hashed('[xen]:2222')} {a.line}\ngarbage line\n")
    second.write_text(f"@revoked * {b.line}\n@cert-authority * {c.line}\n")
    found = known_keys("[xen]:2222", [first, second, tmp_path / "missing"])
    assert [(k.key, k.source, k.revoked) for k in found] == [(a, f"{first}:4", False), (b, f"{second}:1", True)]


def test_verify_known_unknown_new_changed_revoked(tmp_path: Path) -> None:
    key, other = new_key(tmp_path, "k"), new_key(tmp_path, "o")
    known = catalog_key(key.line)
    assert verify(key, known, "xen", accept_new=False, remove_hint="x").source == CATALOG_SOURCE
    with pytest.raises(HostKeyUnknown) as unknown:
        verify(key, [], "xen", accept_new=False, remove_hint="x")
    assert key.fingerprint in unknown.value.message and "ssh_host_ed25519_key.pub" in unknown.value.message
    assert unknown.value.exit_code == 100
    assert verify(key, [], "xen", accept_new=True, remove_hint="x").new
    with pytest.raises(HostKeyChanged) as changed:
        verify(other, known, "xen", accept_new=True, remove_hint="remove it")  # accept-new never covers a change
    assert key.fingerprint in changed.value.message and other.fingerprint in changed.value.message
    assert changed.value.expected == [key.fingerprint] and changed.value.offered == other.fingerprint
    rsa = new_key(tmp_path, "r", "rsa")
    with pytest.raises(HostKeyChanged):  # a key of another type than the known one: refused too
        verify(rsa, known, "xen", accept_new=True, remove_hint="x")
    revoked = [*known_keys("xen", []), *catalog_key(other.line)]
    first = tmp_path / "kh"
    first.write_text(f"@revoked xen {key.line}\n")
    with pytest.raises(HostKeyChanged, match="revoked"):
        verify(key, known_keys("xen", [first]) + revoked, "xen", accept_new=True, remove_hint="x")


def test_unreadable_catalog_key_is_no_key() -> None:
    assert catalog_key("not a key") == [] and catalog_key(None) == []
