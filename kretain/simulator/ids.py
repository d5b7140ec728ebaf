"""Reversible id schemes for the simulated partner.

Entry ids are ``0_`` + 8 base36 chars; asset ids are ``1_`` + 8 base36 chars.
Both encode a 40-bit number scrambled by a 4-round Feistel network, so ids look
random yet map back to their row without a lookup table:

- entry id  <-> entry index (the ``entries.idx`` rowid, >= 1)
- asset id  <-> (entry index, ordinal), packed as ``entry_index * 64 + ordinal``

Ordinal ranges give an asset's kind: flavors 0-15, captions 16-31,
attachments 32-47, thumbnails 48-63.

Assets added through the API (uploads, conversions) are stored rows, not derived
ones; their ids use entry indices from ``STORED_ASSET_BASE`` up (``num`` = the
stored row's number), far above any real entry index, so they look like every
other asset id and decode without a lookup.
"""

from __future__ import annotations

_BITS = 40
_HALF_BITS = 20
_HALF_MASK = (1 << _HALF_BITS) - 1
_LIMIT = 1 << _BITS
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_DIGITS = {c: i for i, c in enumerate(_ALPHABET)}
_ID_CHARS = 8  # 36**8 > 2**40, so every 40-bit value fits

ENTRY_PREFIX = "0_"
ASSET_PREFIX = "1_"
ENTRY_KEY = 0x5EED_0E17
ASSET_KEY = 0x0A55_E7ED
ORDINALS_PER_ENTRY = 64
MAX_ENTRY_INDEX = _LIMIT // ORDINALS_PER_ENTRY - 1
STORED_ASSET_BASE = 1 << 33  # stored asset number n has "entry index" BASE + n

KIND_RANGES: dict[str, range] = {
    "flavor": range(0, 16),
    "caption": range(16, 32),
    "attachment": range(32, 48),
    "thumb": range(48, 64),
}


def _round(half: int, key: int, rnd: int) -> int:
    # A small integer hash; any deterministic function keeps the network bijective.
    h = (half * 0x9E3779B1 + key + rnd * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    h ^= h >> 12
    return h & _HALF_MASK


def scramble(value: int, key: int) -> int:
    """Bijection on [0, 2**40)."""
    left, right = value >> _HALF_BITS, value & _HALF_MASK
    for rnd in range(4):
        left, right = right, left ^ _round(right, key, rnd)
    return (left << _HALF_BITS) | right


def unscramble(value: int, key: int) -> int:
    """Inverse of :func:`scramble`."""
    left, right = value >> _HALF_BITS, value & _HALF_MASK
    for rnd in reversed(range(4)):
        left, right = right ^ _round(left, key, rnd), left
    return (left << _HALF_BITS) | right


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 2 base36 digits per lookup


def _b36(value: int) -> str:
    value, d4 = divmod(value, 1296)
    value, d3 = divmod(value, 1296)
    d1, d2 = divmod(value, 1296)
    return _PAIRS[d1] + _PAIRS[d2] + _PAIRS[d3] + _PAIRS[d4]


def _from_b36(text: str) -> int | None:
    if len(text) != _ID_CHARS:
        return None
    value = 0
    for c in text:
        digit = _DIGITS.get(c)
        if digit is None:
            return None
        value = value * 36 + digit
    return value if value < _LIMIT else None


def entry_id(index: int) -> str:
    """The entry id of entry index ``index`` (1 .. MAX_ENTRY_INDEX)."""
    if not 0 < index <= MAX_ENTRY_INDEX:
        raise ValueError(f"entry index out of range: {index}")
    return ENTRY_PREFIX + _b36(scramble(index, ENTRY_KEY))


def entry_index(eid: str) -> int | None:
    """Entry index of an entry id, or None when ``eid`` is not one of ours."""
    if not isinstance(eid, str) or not eid.startswith(ENTRY_PREFIX):
        return None
    raw = _from_b36(eid[len(ENTRY_PREFIX) :])
    if raw is None:
        return None
    index = unscramble(raw, ENTRY_KEY)
    return index if 0 < index <= MAX_ENTRY_INDEX else None


def asset_id(index: int, ordinal: int) -> str:
    """The asset id of ordinal ``ordinal`` (0..63) of entry index ``index``."""
    if not 0 < index <= MAX_ENTRY_INDEX or not 0 <= ordinal < ORDINALS_PER_ENTRY:
        raise ValueError(f"asset ref out of range: {index}/{ordinal}")
    return ASSET_PREFIX + _b36(scramble(index * ORDINALS_PER_ENTRY + ordinal, ASSET_KEY))


def asset_ref(aid: str) -> tuple[int, int] | None:
    """(entry index, ordinal) of an asset id, or None when it is not one of ours."""
    if not isinstance(aid, str) or not aid.startswith(ASSET_PREFIX):
        return None
    raw = _from_b36(aid[len(ASSET_PREFIX) :])
    if raw is None:
        return None
    index, ordinal = divmod(unscramble(raw, ASSET_KEY), ORDINALS_PER_ENTRY)
    return (index, ordinal) if index > 0 else None


def kind_of(ordinal: int) -> str:
    """Asset kind for an ordinal."""
    for kind, span in KIND_RANGES.items():
        if ordinal in span:
            return kind
    raise ValueError(f"ordinal out of range: {ordinal}")


def stored_asset_id(num: int) -> str:
    """The asset id of stored asset number ``num`` (>= 1)."""
    if not 0 < num <= MAX_ENTRY_INDEX - STORED_ASSET_BASE:
        raise ValueError(f"stored asset number out of range: {num}")
    return asset_id(STORED_ASSET_BASE + num, 0)


def stored_asset_num(aid: str) -> int | None:
    """Stored asset number of an asset id, or None when it is not a stored asset's id."""
    ref = asset_ref(aid)
    if ref is None or ref[0] <= STORED_ASSET_BASE or ref[1] != 0:
        return None
    return ref[0] - STORED_ASSET_BASE
