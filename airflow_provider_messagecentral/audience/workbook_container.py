"""
Is a file a safe .xlsx? Checked with :mod:`zipfile` (no decompression) before any parser sees it, so a legacy
.xls, a CSV renamed to .xlsx, another Office file or a zip bomb is refused with a clear message.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import IO

from airflow_provider_messagecentral.exceptions import MessageCentralValidationError

MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_COMPRESSION_RATIO = 100
MAX_ZIP_MEMBERS = 10_000
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_MB = 1024 * 1024


def refuse(path: Path, why: str) -> MessageCentralValidationError:
    """The error refusing the workbook at ``path``: its file name, then why."""
    return MessageCentralValidationError(f"{path.name}: {why}")


def _describe_non_zip(path: Path, head: bytes) -> str:
    if head.startswith(_OLE2_MAGIC[:4]):
        return (
            "not an .xlsx: this is a legacy .xls or a password-protected/encrypted workbook (OLE2 file) "
            "— save it as .xlsx without a password"
        )
    codec = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8"
    text = head.decode(codec, errors="replace").lstrip("\ufeff")
    odd = sum(1 for ch in text if not (ch.isprintable() or ch in "\r\n\t") or ch == "\ufffd")
    if text.strip() and odd <= len(text) // 20:
        lines = text.splitlines()
        first = lines[0][:60] if lines else ""
        return (
            f"not an .xlsx: this is CSV or plain text renamed to .xlsx (first line {first!r}) "
            "— open it in a spreadsheet program and save it as .xlsx"
        )
    return f"not an .xlsx workbook (unrecognised content starting with bytes {head[:8].hex(' ')})"


def open_checked(
    path: str | Path,
    *,
    max_bytes: int = 50 * _MB,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES,
    max_ratio: float = MAX_COMPRESSION_RATIO,
) -> Path:
    """
    Refuse anything that is not a safe .xlsx, without parsing it; return the path.

    Checks the file size, the magic bytes (OLE2 .xls/encrypted, text), that the zip holds an Office Open XML
    workbook, and the declared uncompressed sizes and compression ratios of its members (zip bombs).
    """
    path = _existing(path, max_bytes)
    with path.open("rb") as fh:
        head = fh.read(4096)
    _check_container(path, head, path, max_uncompressed_bytes, max_ratio)
    return path


def read_checked(
    path: str | Path,
    *,
    max_bytes: int = 50 * _MB,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES,
    max_ratio: float = MAX_COMPRESSION_RATIO,
) -> bytes:
    """The bytes of a workbook that passes :func:`open_checked`'s checks (read once: what is checked is what
    is used)."""
    path = _existing(path, max_bytes)
    content = path.read_bytes()
    if len(content) > max_bytes:
        raise refuse(path, f"the file is {len(content) / _MB:.1f} MB, over the limit of {max_bytes / _MB:.1f} MB")
    _check_container(path, content[:4096], io.BytesIO(content), max_uncompressed_bytes, max_ratio)
    return content


def _existing(path: str | Path, max_bytes: int) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MessageCentralValidationError(f"workbook not found: {str(path)!r}")
    size = path.stat().st_size
    if size == 0:
        raise refuse(path, "the file is empty")
    if size > max_bytes:
        raise refuse(path, f"the file is {size / _MB:.1f} MB, over the limit of {max_bytes / _MB:.1f} MB")
    return path


def _check_container(
    path: Path, head: bytes, source: Path | IO[bytes], max_uncompressed_bytes: int, max_ratio: float
) -> None:
    if not head.startswith(_ZIP_MAGIC):
        raise refuse(path, _describe_non_zip(path, head))
    try:
        with zipfile.ZipFile(source) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise refuse(path, f"damaged or truncated .xlsx (zip): {err}") from None
    names = {m.filename for m in members}
    if len(members) > MAX_ZIP_MEMBERS:
        raise refuse(path, f"{len(members)} entries in the zip: not a plain workbook, refused")
    if "xl/workbook.bin" in names:
        raise refuse(path, "a binary .xlsb workbook — save it as .xlsx")
    if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
        kind = "a zip archive"
        if "word/document.xml" in names:
            kind = "a Word document"
        elif "ppt/presentation.xml" in names:
            kind = "a PowerPoint presentation"
        elif "mimetype" in names or "content.xml" in names:
            kind = "an OpenDocument file (.ods?)"
        raise refuse(path, f"{kind}, not an .xlsx workbook (no [Content_Types].xml / xl/workbook.xml)")
    total = sum(m.file_size for m in members)
    if total > max_uncompressed_bytes:
        raise refuse(
            path,
            f"declares {total / _MB:.0f} MB uncompressed (limit {max_uncompressed_bytes / _MB:.0f} MB): "
            "refused as a possible zip bomb",
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > _MB and ratio > max_ratio:
            raise refuse(
                path,
                f"member {member.filename!r} expands {ratio:.0f}x ({member.file_size / _MB:.0f} MB): "
                "refused as a possible zip bomb",
            )
