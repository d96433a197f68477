"""SMS encoding (GSM 03.38 7-bit or UCS-2) and segment counting, the way handsets and SMSCs count them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# GSM 03.38 default alphabet, in code order 0x00-0x7F. 0x1B (ESC) is not a character of its own: it
# introduces the extension table below, so it is left out.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# GSM 03.38 extension table: each character is sent as ESC + code, i.e. two septets.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE_LIMIT = 160  # septets in a single-part message
GSM7_PART_LIMIT = 153  # septets per part of a concatenated message (7 go to the UDH)
UCS2_SINGLE_LIMIT = 70  # UTF-16 code units in a single-part message
UCS2_PART_LIMIT = 67  # UTF-16 code units per part of a concatenated message


def encoding(text: str) -> str:
    """``"GSM-7"`` when every character is in the GSM 03.38 basic set or extension table, else ``"UCS-2"``."""
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION:
            return UCS2
    return GSM7


def _septet_cost(ch: str) -> int:
    return 2 if ch in GSM7_EXTENSION else 1


def _utf16_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def septets(text: str) -> int:
    """
    Length of ``text`` in GSM-7 septets: extension characters (``^ { } \\ [ ~ ] | €`` and form feed) count 2.

    :param text: a message that is GSM-7 encodable (see :func:`encoding`).
    :raises ValueError: when ``text`` holds a character GSM-7 cannot carry.
    """
    total = 0
    for ch in text:
        if ch in GSM7_BASIC:
            total += 1
        elif ch in GSM7_EXTENSION:
            total += 2
        else:
            raise ValueError(f"character {ch!r} (U+{ord(ch):04X}) is not in the GSM 03.38 alphabet")
    return total


def utf16_units(text: str) -> int:
    """Length of ``text`` in UTF-16 code units: characters outside the BMP (most emoji) count 2."""
    return sum(_utf16_cost(ch) for ch in text)


def _parts(text: str, cost_of: Callable[[str], int], part_limit: int) -> int:
    """Count parts, never splitting one character (an ESC pair or a surrogate pair) across two parts."""
    parts, used = 1, 0
    for ch in text:
        cost = cost_of(ch)
        if used + cost > part_limit:
            parts += 1
            used = 0
        used += cost
    return parts


def segments(text: str) -> int:
    """
    Number of SMS parts ``text`` is sent as; empty text is 0.

    GSM-7: up to 160 septets is one part, longer texts go in parts of 153 septets. UCS-2: up to 70 UTF-16
    units is one part, longer texts go in parts of 67 units. As on real handsets, an extension character's
    escape pair and an emoji's surrogate pair are never split: a part that would end in the middle of one
    ends a unit early and the character starts the next part.
    """
    if not text:
        return 0
    if encoding(text) == GSM7:
        if septets(text) <= GSM7_SINGLE_LIMIT:
            return 1
        return _parts(text, _septet_cost, GSM7_PART_LIMIT)
    if utf16_units(text) <= UCS2_SINGLE_LIMIT:
        return 1
    return _parts(text, _utf16_cost, UCS2_PART_LIMIT)


@dataclass(frozen=True)
class SegmentInfo:
    """
    How one message text goes over the air.

    :param encoding: ``"GSM-7"`` or ``"UCS-2"``.
    :param characters: characters (Unicode code points) in the text.
    :param units: septets for GSM-7, UTF-16 code units for UCS-2.
    :param segments: SMS parts billed for the text.

    Example::

        analyse("Hello {name}")  # SegmentInfo(encoding='GSM-7', characters=12, units=14, segments=1)
    """

    encoding: str
    characters: int
    units: int
    segments: int


# ASCII text (most messages) is counted without a loop in Python: GSM-7 unless it holds an ASCII character
# outside both tables; each extension character costs one septet more.
_ASCII_NOT_GSM7 = re.compile(
    "[" + re.escape("".join(chr(c) for c in range(128) if chr(c) not in GSM7_BASIC | GSM7_EXTENSION)) + "]"
)
_ASCII_EXTENSION = re.compile("[" + re.escape("".join(ch for ch in GSM7_EXTENSION if ch.isascii())) + "]")
_ASCII_BASIC = bytes(code for code in range(128) if chr(code) in GSM7_BASIC)
_DROP_EXTENSION = str.maketrans("", "", "".join(ch for ch in GSM7_EXTENSION if ch.isascii()))


def analyse(text: str) -> SegmentInfo:
    """Encoding, length and segment count of ``text`` (see :func:`segments`)."""
    if text.isascii() and _ASCII_NOT_GSM7.search(text) is None:
        units = len(text)
        if _ASCII_EXTENSION.search(text) is not None:
            units += units - len(text.translate(_DROP_EXTENSION))
        parts = (1 if text else 0) if units <= GSM7_SINGLE_LIMIT else _parts(text, _septet_cost, GSM7_PART_LIMIT)
        return SegmentInfo(encoding=GSM7, characters=len(text), units=units, segments=parts)
    enc = encoding(text)
    units = septets(text) if enc == GSM7 else utf16_units(text)
    return SegmentInfo(encoding=enc, characters=len(text), units=units, segments=segments(text))


def plain_gsm7(text: str) -> bool:
    """
    Every character of ``text`` is one GSM-7 septet of the basic set and ASCII: its length is its septets.

    One test of many texts at once (joined by ``"\\n"``, itself such a character) tells that each is.
    """
    return text.isascii() and not text.encode("ascii").translate(None, _ASCII_BASIC)
