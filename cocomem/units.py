"""Sizes: parsing ``2MiB``/``512M``/integers and printing them back."""

from __future__ import annotations

import re

PAGE_SIZE = 4096
SZ_2M = 2 << 20
SZ_1G = 1 << 30

_SUFFIXES = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tib": 1 << 40,
    "p": 1 << 50,
    "pib": 1 << 50,
}
#: the sizes parse_size accepts, as an ECMA-262 pattern for JSON Schema
SIZE_PATTERN = r"^\s*\d+\s*(" + "|".join(
    "".join(f"[{c}{c.upper()}]" for c in suffix) for suffix in _SUFFIXES if suffix) + r")?\s*$"
#: a sign is accepted so that callers can reject "-2MiB" as negative, not as garbage
_SIZE_RE = re.compile(r"^\s*(-?\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str) -> int:
    """Return a size in bytes; binary units (``M`` and ``MiB`` are both 2**20)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(str(value))
    if not match or match.group(2).lower() not in _SUFFIXES:
        raise ValueError(f"not a size: {value!r} (use e.g. 2MiB, 512M, 1GiB or bytes)")
    return int(match.group(1)) * _SUFFIXES[match.group(2).lower()]


def format_size(nbytes: int) -> str:
    """The largest binary unit that divides ``nbytes`` exactly: ``2MiB``, ``1536KiB``."""
    for unit, factor in (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30),
                         ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes and nbytes % factor == 0:
            return f"{nbytes // factor}{unit}"
    return f"{nbytes}B"


def format_bytes_short(nbytes: int) -> str:
    """A rounded human size for tables: ``130.0M``, ``1.5G``."""
    value = float(nbytes)
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def align_up(value: int, align: int) -> int:
    """The smallest multiple of ``align`` at or above ``value``."""
    return -(-value // align) * align
