"""File formats, gzip compression and text encodings of raw source files.

Decoding never raises on bad input. Bytes that do not decode become lone surrogates
U+DC00-U+DCFF in the decoded text, one per byte, which strictly decoded UTF-8, UTF-16 or
GB18030 text cannot contain. ``undecodable_offset`` finds them and ``escape_undecodable``
writes them as ``\\xNN``, so a bad line can be reported and kept rather than dropped.
"""

from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass
from pathlib import PurePath

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
# A Parquet file is the magic, the data, the footer, the footer's 4-byte length and the magic.
PARQUET_MIN_BYTES = 12
FORMAT_BY_SUFFIX = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet",
}
GZIP_CHUNK_BYTES = 1 << 16
TRUNCATED_GZIP = "truncated gzip stream"
BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
ENCODING_NAMES = {"utf-8": "UTF-8", "utf-16-le": "UTF-16 LE", "utf-16-be": "UTF-16 BE",
                  "gb18030": "GB18030"}
_UNDECODABLE_FIRST = 0xDC00
_UNDECODABLE = re.compile("[\udc00-\udcff]")
_MARK_ERRORS = "social-pulse-mark-undecodable"


def _mark_undecodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start : error.end]
    return "".join(chr(_UNDECODABLE_FIRST + byte) for byte in bad), error.end


codecs.register_error(_MARK_ERRORS, _mark_undecodable)


@dataclass(frozen=True)
class DecodedText:
    """The text of a file, with undecodable bytes marked, and the encoding it was read in."""

    text: str
    encoding: str

    @property
    def encoding_name(self) -> str:
        return ENCODING_NAMES.get(self.encoding, self.encoding.upper())


def format_for_name(name: str) -> str | None:
    """Return the format ('jsonl', 'csv' or 'parquet') for a file name, ignoring a '.gz'."""
    lowered = name.lower().removesuffix(".gz")
    return FORMAT_BY_SUFFIX.get(PurePath(lowered).suffix)


def unreadable_reason(format_name: str, data: bytes) -> str | None:
    """Return why ``data`` cannot be a file of ``format_name``, or None when it may be one.

    Only Parquet is checked: a file without the magic bytes at both ends is not Parquet or
    was cut short, for example a copy still in progress.
    """
    if format_name != "parquet" or not data or data.startswith(GZIP_MAGIC):
        return None
    if len(data) < PARQUET_MIN_BYTES or not (
        data.startswith(PARQUET_MAGIC) and data.endswith(PARQUET_MAGIC)
    ):
        return "not a Parquet file: the PAR1 magic bytes are missing at its start or end"
    return None


def decompress(data: bytes) -> tuple[bytes, str | None]:
    """Return ``data`` gunzipped when it starts with the gzip magic bytes, else unchanged.

    A truncated or corrupt stream is not an error here: the result is every byte decompressed
    before the damage, with the reason as the second item. Concatenated gzip members and the
    zero padding some writers add between them are read as ``gzip.decompress`` reads them.
    """
    if not data.startswith(GZIP_MAGIC):
        return data, None
    output = bytearray()
    remaining = data
    while remaining:
        consumed, error = _decompress_member(remaining, output)
        if error:
            return bytes(output), error
        remaining = remaining[consumed:].lstrip(b"\x00")
    return bytes(output), None


def _decompress_member(data: bytes, output: bytearray) -> tuple[int, str | None]:
    """Append one gzip member of ``data`` to ``output``. Returns the bytes used and any error.

    The input goes in chunks so that a corrupt block loses only the output of its own chunk.
    """
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    for start in range(0, len(data), GZIP_CHUNK_BYTES):
        chunk = data[start : start + GZIP_CHUNK_BYTES]
        try:
            output += decompressor.decompress(chunk)
        except zlib.error as error:
            return len(data), f"corrupt gzip stream ({error})"
        if decompressor.eof:
            return start + len(chunk) - len(decompressor.unused_data), None
    output += decompressor.flush()
    return len(data), TRUNCATED_GZIP


def decode(data: bytes, truncated: bool = False) -> DecodedText:
    """Decode ``data`` in its detected encoding, marking the bytes that do not decode.

    A byte order mark selects UTF-8, UTF-16 LE or UTF-16 BE and stays in the text as U+FEFF.
    Without one the text is UTF-8, unless ``looks_like_gb18030`` holds. For ``truncated``
    data the encoding is detected without its last line, which may end inside a character.
    """
    complete = data[: data.rfind(b"\n") + 1] if truncated else data
    encoding = detect_encoding(complete)
    return DecodedText(data.decode(encoding, errors=_MARK_ERRORS), encoding)


def detect_encoding(data: bytes) -> str:
    """Return the Python codec name of the encoding ``data`` is most likely in."""
    for mark, encoding in BYTE_ORDER_MARKS:
        if data.startswith(mark):
            return encoding
    return "gb18030" if looks_like_gb18030(data) else "utf-8"


def looks_like_gb18030(data: bytes) -> bool:
    """Return True when strict UTF-8 fails on most lines that have non-ASCII bytes, and
    strict GB18030 fails on fewer of them.

    Counting only lines with non-ASCII bytes keeps a Chinese file with many ASCII-only lines
    from being read as UTF-8. One bad line in a UTF-8 file with other non-ASCII lines stays
    UTF-8, and one bad line in a GBK file stays GB18030, so only that line is undecodable.
    """
    if _decodes(data, "utf-8"):
        return False
    non_ascii = [line for line in data.split(b"\n") if not line.isascii()]
    utf8_failing = sum(1 for line in non_ascii if not _decodes(line, "utf-8"))
    if utf8_failing * 2 <= len(non_ascii):
        return False
    gb18030_failing = sum(1 for line in non_ascii if not _decodes(line, "gb18030"))
    # NOTE: a file whose only non-ASCII line is in Latin-1 can also decode as GB18030, as
    # b"caf\xe9s" does, and is then read as GB18030 with wrong characters in that line.
    return gb18030_failing < utf8_failing


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def undecodable_offset(text: str, encoding: str) -> int | None:
    """Return the byte offset in ``text``'s source of its first undecodable byte, or None."""
    match = _UNDECODABLE.search(text)
    return None if match is None else len(text[: match.start()].encode(encoding))


def escape_undecodable(text: str) -> str:
    """Return ``text`` with each undecodable byte written as ``\\xNN``."""
    return _UNDECODABLE.sub(_escape_byte, text)


def _escape_byte(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()) - _UNDECODABLE_FIRST:02x}"
