"""Root password: SHA-512 crypt via openssl, checked with an independent implementation (libcrypt)."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import subprocess
from pathlib import Path

import pytest

from vdcmanage.errors import FileNotFound, InvalidArgument
from vdcmanage.prepare import password


def libcrypt_crypt(secret: str, setting: str) -> str:
    """glibc/libxcrypt's crypt(3): a different implementation from OpenSSL's."""
    name = ctypes.util.find_library("crypt")
    assert name, "libcrypt is part of every Debian system (libcrypt1)"
    lib = ctypes.CDLL(name)
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib.crypt(secret.encode(), setting.encode()).decode()


@pytest.mark.parametrize("secret", ["S3cret pass", "ünïcödé-€", "x", "a" * 200])
def test_hash_is_sha512_crypt_that_libcrypt_verifies(secret: str) -> None:
    hashed = password.sha512_crypt(secret)
    assert hashed.startswith("$6$")
    assert len(password.salt_of(hashed) or "") == 16
    assert libcrypt_crypt(secret, hashed) == hashed
    assert libcrypt_crypt(secret + "!", hashed) != hashed


def test_fresh_salt_each_time_and_matches_checks_the_password() -> None:
    first, second = password.sha512_crypt("pw"), password.sha512_crypt("pw")
    assert first != second
    assert password.matches("pw", first) and password.matches("pw", second)
    assert not password.matches("other", first)
    assert not password.matches("pw", "$1$md5salt$whatever")
    assert not password.matches("pw", "!")
    rounds = libcrypt_crypt("pw", "$6$rounds=6000$abcdefgh$")
    assert not password.matches("pw", rounds)  # cannot be reproduced by openssl: treated as to be set


def test_password_never_goes_on_a_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(list(argv))
        return real_run(argv, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "run", spy)
    password.sha512_crypt("very-secret-word")
    assert seen and all("very-secret-word" not in " ".join(argv) for argv in seen)


def test_load_password_from_file_takes_the_first_line(tmp_path: Path) -> None:
    file = tmp_path / "pw"
    file.write_text("first line pw\r\nsecond\n")
    assert password.load_password(str(file), False) == "first line pw"


def test_load_password_from_stdin_text() -> None:
    assert password.load_password(None, True, "from stdin\n") == "from stdin"
    assert password.load_password(None, False) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "empty"), ("\nsecond", "empty")],
)
def test_empty_password_is_refused(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "pw"
    file.write_text(content)
    with pytest.raises(InvalidArgument, match=message):
        password.load_password(str(file), False)


def test_missing_file_and_both_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound):
        password.load_password(str(tmp_path / "nope"), False)
    with pytest.raises(InvalidArgument, match="not both"):
        password.load_password(str(tmp_path / "nope"), True, "x")


def test_read_password_line_rejects_nul() -> None:
    with pytest.raises(InvalidArgument):
        password.read_password_line("a\0b\n")
    assert password.read_password_line(io.StringIO("pw\n").read()) == "pw"
