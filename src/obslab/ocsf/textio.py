"""Reading text telemetry files in bounded chunks, whatever their encoding.

Handles what real exports contain: a UTF-8 byte-order mark, CRLF line ends, and whole files in
UTF-16 (a PowerShell ``>`` redirect), detected by BOM or by NUL-byte pattern and decoded on the
fly. Lines are yielded as UTF-8 ``bytes`` without their line end, in lists of about
``chunk_bytes`` so callers parse in batches and never hold the whole input.
"""

from __future__ import annotations

import codecs
import io
import os
from typing import Iterator

CHUNK_BYTES = 8 << 20


def sniff_encoding(head: bytes) -> str:
    """'utf-8', 'utf-8-sig', 'utf-16-le' or 'utf-16-be' from the first bytes of a file."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le-bom"
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be-bom"
    sample = head[:4096]
    if len(sample) >= 4 and sample.count(0) > len(sample) // 4:
        odd_nuls = sample[1::2].count(0)
        even_nuls = sample[0::2].count(0)
        return "utf-16-le" if odd_nuls > even_nuls else "utf-16-be"
    return "utf-8"


def _strip(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line


def _strip_all(lines: list[bytes]) -> list[bytes]:
    """``[_strip(line) for line in lines]``, done by one join and split when no CR is present
    (a Python call per line is most of the reading cost of a million short lines)."""
    data = b"".join(lines)
    if not data or b"\r" in data:
        return [_strip(line) for line in lines]
    out = data.split(b"\n")
    if data.endswith(b"\n"):
        out.pop()  # the last line's end, not an extra line
    return out


def iter_line_chunks(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES,
                     encoding_out: list | None = None) -> Iterator[tuple[int, list[bytes]]]:
    """Yield ``(first_line_no, lines)``; line numbers are 1-based and count every line."""
    with open(path, "rb") as raw:
        head = raw.read(4096)
        enc = sniff_encoding(head)
        if encoding_out is not None:
            encoding_out.append(enc)
        raw.seek(0)
        if enc.startswith("utf-16"):
            codec = enc.replace("-bom", "")
            text = io.TextIOWrapper(raw, encoding=codec, errors="replace", newline="")
            first = True
            line_no = 1
            while True:
                lines = text.readlines(chunk_bytes // 2)
                if not lines:
                    break
                if first and lines[0].startswith("\ufeff"):
                    lines[0] = lines[0][1:]
                first = False
                out = [_strip(line.encode("utf-8")) for line in lines]
                yield line_no, out
                line_no += len(out)
            return
        line_no = 1
        first = True
        while True:
            lines = raw.readlines(chunk_bytes)
            if not lines:
                break
            if first and lines[0].startswith(codecs.BOM_UTF8):
                lines[0] = lines[0][3:]
            first = False
            out = _strip_all(lines)
            yield line_no, out
            line_no += len(out)


def read_all_text(path: str | os.PathLike) -> bytes:
    """The whole file as UTF-8 bytes (only for single-document inputs, which are small)."""
    data = open(path, "rb").read()
    enc = sniff_encoding(data[:4096])
    if enc == "utf-8":
        return data
    if enc == "utf-8-sig":
        return data[3:]
    return data.decode(enc.replace("-bom", ""), errors="replace").lstrip("\ufeff").encode("utf-8")
