"""The root password as a SHA-512 crypt hash (``$6$``), via ``openssl passwd -6``.

Python's ``crypt`` module is deprecated and gone in 3.13, so hashing goes through OpenSSL's
implementation, always with the password on stdin: it never appears on a command line, in the
environment or in a log. The salt (16 characters from a random source) is not secret.
"""

from __future__ import annotations

import secrets
import string
import subprocess

from vdcmanage.errors import InvalidArgument, VdcError

SALT_ALPHABET = string.ascii_letters + string.digits + "./"
SALT_LENGTH = 16  # the most SHA-crypt uses


def check_password(password: str) -> str:
    if not password:
        raise InvalidArgument("The root password is empty")
    if "\n" in password or "\r" in password or "\0" in password:
        raise InvalidArgument("The root password must be a single line")
    return password


def read_password_line(data: str) -> str:
    """The password in a file or on stdin: its first line, without the line ending."""
    first = data.split("\n", 1)[0]
    return check_password(first[:-1] if first.endswith("\r") else first)


def new_salt() -> str:
    return "".join(secrets.choice(SALT_ALPHABET) for _ in range(SALT_LENGTH))


def sha512_crypt(password: str, salt: str | None = None) -> str:
    """``$6$<salt>$<hash>`` for the password; a fresh random salt unless one is given."""
    check_password(password)
    salt = new_salt() if salt is None else salt
    try:
        proc = subprocess.run(
            ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
            input=password + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise VdcError("openssl is not installed on this machine (needed to hash the root password)") from exc
    hashed = proc.stdout.strip()
    if proc.returncode != 0 or not hashed.startswith("$6$"):
        raise VdcError(f"openssl passwd failed: {(proc.stderr or '').strip() or 'no output'}")
    return hashed


def salt_of(hashed: str) -> str | None:
    """The salt of a plain ``$6$salt$hash`` (None for other schemes or explicit rounds)."""
    parts = hashed.split("$")
    if len(parts) != 4 or parts[1] != "6" or parts[2].startswith("rounds="):
        return None
    return parts[2]


def matches(password: str, hashed: str) -> bool:
    """Whether ``hashed`` is the SHA-512 crypt of ``password`` (False when we cannot tell)."""
    salt = salt_of(hashed)
    return salt is not None and secrets.compare_digest(sha512_crypt(password, salt), hashed)


def load_password(file: str | None, from_stdin: bool, stdin_text: str | None = None) -> str | None:
    """The root password from a file or stdin (never argv): its first line. None when neither is given."""
    if file and from_stdin:
        raise InvalidArgument("Give the root password in a file or on stdin, not both")
    if file:
        from pathlib import Path

        from vdcmanage.errors import FileNotFound

        path = Path(file)
        if not path.is_file():
            raise FileNotFound(file)
        try:
            data = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"Cannot read the root password file {file}: {exc}") from exc
        return read_password_line(data)
    if from_stdin:
        if stdin_text is None:
            import sys

            stdin_text = sys.stdin.readline()
        return read_password_line(stdin_text)
    return None
