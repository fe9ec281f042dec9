"""The offline `echo` image model: a deterministic placeholder PNG (zlib + struct, no
imaging library). The same prompt, style and size always give the same bytes; colours and
stripes come from a hash of the prompt and style, so different prompts look different."""

from __future__ import annotations

import hashlib
import struct
import zlib

MAX_SIDE = 1024
"""Placeholders keep the requested aspect ratio but are at most this long on either side."""

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def placeholder_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def placeholder_png(prompt: str, style: str, width: int, height: int) -> bytes:
    """A `width` x `height` RGB PNG (call placeholder_size first to bound it)."""
    seed = hashlib.sha256(f"{style}\0{prompt}".encode()).digest()
    background, stripe, border = seed[0:3], seed[3:6], bytes(255 - b for b in seed[0:3])
    period = 16 + seed[6] % 48
    band = max(2, period * (1 + seed[7] % 3) // 4)
    # One long row of diagonal stripes; each image row is a window on it, shifted by y.
    pattern = b"".join(stripe if i % period < band else background for i in range(period))
    line = pattern * (width // period + 2)
    edge = max(1, min(width, height) // 64)
    rows = bytearray()
    for y in range(height):
        if y < edge or y >= height - edge:
            pixels = border * width
        else:
            shift = (y % period) * 3
            pixels = border * edge + line[shift + edge * 3 : shift + (width - edge) * 3]
            pixels += border * edge
        rows += b"\x00" + pixels  # filter type 0 (None)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"".join(
        [
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(bytes(rows), 9)),
            _chunk(b"IEND", b""),
        ]
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
