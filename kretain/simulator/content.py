"""Deterministic file content for simulated assets.

Every asset has a content seed and a size. Its bytes are a fixed 64 KiB
pseudo-random block per seed, rotated by a different amount in every 64 KiB
chunk of the file, so each byte depends on the seed and on its position
(a download that resumes at the wrong offset gets different bytes). Generating
is slicing, so it runs at memory speed.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

BLOCK = 65_536


@lru_cache(maxsize=256)
def _doubled_block(seed: int) -> bytes:
    block = hashlib.shake_256(b"kretain-sim-content:%d" % seed).digest(BLOCK)
    return block + block


def _rotation(seed: int, chunk: int) -> int:
    h = (chunk * 0x9E3779B97F4A7C15 + seed * 0xC2B2AE3D27D4EB4F + 0x165667B1) & (2**64 - 1)
    h ^= h >> 29
    h = (h * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    h ^= h >> 32
    return h % BLOCK


def content_bytes(seed: int, offset: int, length: int) -> bytes:
    """Bytes ``[offset, offset + length)`` of the file with content seed ``seed``."""
    if offset < 0 or length < 0:
        raise ValueError("offset and length must be >= 0")
    doubled = _doubled_block(seed)
    parts: list[bytes] = []
    pos, end = offset, offset + length
    while pos < end:
        chunk, within = divmod(pos, BLOCK)
        take = min(BLOCK - within, end - pos)
        start = _rotation(seed, chunk) + within
        parts.append(doubled[start : start + take])
        pos += take
    return b"".join(parts)


def content_sha256(seed: int, size: int, piece: int = 1 << 20) -> str:
    """Hex SHA-256 of the whole file (tests compare downloads against it)."""
    digest = hashlib.sha256()
    for offset in range(0, size, piece):
        digest.update(content_bytes(seed, offset, min(piece, size - offset)))
    return digest.hexdigest()
