"""Checks on operator-supplied values, shared by every record type."""

from __future__ import annotations

from vdcmanage.errors import InvalidArgument

NAME_MAX = 255
DESCRIPTION_MAX = 4096


def check_text(label: str, value: str, *, max_length: int, allow_empty: bool = False, single_line: bool = True) -> str:
    """Refuse empty (unless allowed), over-long, multi-line (if single) or non-UTF-8 text."""
    if not value and not allow_empty:
        raise InvalidArgument(f"{label} must not be empty")
    if len(value) > max_length:
        raise InvalidArgument(f"{label} is too long ({len(value)} characters; at most {max_length})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: bytes from argv that were not UTF-8
        raise InvalidArgument(f"{label} is not valid UTF-8 text") from exc
    if single_line and any(ch in value for ch in "\r\n\0"):
        raise InvalidArgument(f"{label} must be a single line")
    if "\0" in value:
        raise InvalidArgument(f"{label} must not contain NUL characters")
    return value


def check_name(label: str, value: str | None) -> str | None:
    return None if value is None else check_text(label, value, max_length=NAME_MAX)


def check_description(value: str | None) -> str | None:
    """An empty description means none."""
    if value is None:
        return None
    check_text("Description", value, max_length=DESCRIPTION_MAX, allow_empty=True, single_line=False)
    return value or None


def check_choice(label: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidArgument(f"Unsupported {label} {value!r}: expected one of {', '.join(choices)}")
    return value
