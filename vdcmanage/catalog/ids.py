"""Canonical ids: ``<prefix>-<suffix>``, the suffix ``[a-z0-9]+`` of at most 255 characters.

New ids get 8 random characters, as Wakame-vdc's did; an operator may choose any valid one.
"""

from __future__ import annotations

import re
import secrets

from vdcmanage.errors import InvalidArgument

PREFIXES = {
    "account": "a",
    "image": "wmi",
    "host": "hn",
    "backup storage": "bkst",
    "job": "job",
}
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
GENERATED_LENGTH = 8
MAX_SUFFIX = 255
SUFFIX_RE = re.compile(r"[a-z0-9]{1,255}")
# Column width for ids: the longest prefix, the dash and the longest suffix.
ID_MAX_LENGTH = max(len(p) for p in PREFIXES.values()) + 1 + MAX_SUFFIX


def new_id(kind: str) -> str:
    suffix = "".join(secrets.choice(ALPHABET) for _ in range(GENERATED_LENGTH))
    return f"{PREFIXES[kind]}-{suffix}"


def is_valid_id(kind: str, value: str) -> bool:
    prefix, dash, suffix = value.partition("-")
    return dash == "-" and prefix == PREFIXES[kind] and SUFFIX_RE.fullmatch(suffix) is not None


def check_id(kind: str, value: str) -> str:
    """Return ``value`` if it is a well-formed id of ``kind``, else refuse with the expected shape."""
    if not is_valid_id(kind, value):
        prefix = PREFIXES[kind]
        raise InvalidArgument(
            f"Invalid {kind} id {value!r}: expected {prefix}- followed by 1 to {MAX_SUFFIX} "
            f"characters of [a-z0-9] (e.g. {prefix}-{'x' * GENERATED_LENGTH})"
        )
    return value
