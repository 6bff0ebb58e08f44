"""The text a reportlab PDF shows, read back for tests: its content streams (ASCII85 and
Flate, reportlab's defaults) and the strings of their ``Tj`` operators, decoded as UTF-16BE
where set in the CID font (STSong-Light, UCS-2 encoded) and as Latin-1 otherwise."""

from __future__ import annotations

import base64
import re
import zlib

_STREAM = re.compile(rb"stream\r?\n(.*?)endstream", re.S)
_SHOWN = re.compile(rb"/(F\d+) [\d.]+ Tf[^(/]*?\(((?:\\.|[^\\)])*)\) Tj", re.S)
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)", re.S)
_SIMPLE = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(raw: bytes) -> bytes:
    def one(m: re.Match[bytes]) -> bytes:
        code = m.group(1)
        if code[:1].isdigit():
            return bytes([int(code, 8)])
        return _SIMPLE.get(code, code)

    return _ESCAPE.sub(one, raw)


def pdf_text(pdf: bytes, cid_fonts: tuple[bytes, ...] = (b"F2",)) -> str:
    """Every shown string, one per line; strings in ``cid_fonts`` decoded as UTF-16BE."""
    out = []
    for m in _STREAM.finditer(pdf):
        data = m.group(1).strip()
        try:
            data = zlib.decompress(base64.a85decode(data.removesuffix(b"~>")))
        except (ValueError, zlib.error):
            continue  # not a content stream of reportlab's kind (an image, a font)
        for font, raw in _SHOWN.findall(data):
            text = _unescape(raw)
            out.append(text.decode("utf-16-be" if font in cid_fonts else "latin-1"))
    return "\n".join(out)
