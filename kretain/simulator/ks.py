"""Kaltura session strings (KS v1 and v2): signing and verification.

KS v2 is AES-128-CBC (zero IV, NUL padding) over SHA1(plain) + plain, where
plain = 16 random bytes + urlencoded fields (kaltura-api.md 2.3). The AES here
is a small pure-Python implementation so the simulator needs no crypto
dependency; it only ever handles a few hundred bytes per session and parsed
sessions are cached by the server.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

# ---- AES-128 (FIPS-197), byte oriented --------------------------------------


def _build_sbox() -> tuple[list[int], list[int]]:
    sbox = [0] * 256
    inv = [0] * 256
    p = q = 1
    # Walk the multiplicative group with generator 3; q tracks the inverse of p.
    while True:
        p = p ^ ((p << 1) & 0xFF) ^ (0x1B if p & 0x80 else 0)
        q ^= q << 1
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        x = q ^ _rotl8(q, 1) ^ _rotl8(q, 2) ^ _rotl8(q, 3) ^ _rotl8(q, 4) ^ 0x63
        sbox[p] = x
        inv[x] = p
        if p == 1:
            break
    sbox[0] = 0x63
    inv[0x63] = 0
    return sbox, inv


def _rotl8(x: int, shift: int) -> int:
    return ((x << shift) | (x >> (8 - shift))) & 0xFF


def _xtime(a: int) -> int:
    return ((a << 1) ^ 0x1B) & 0xFF if a & 0x80 else a << 1


def _mul(a: int, b: int) -> int:
    result = 0
    while b:
        if b & 1:
            result ^= a
        a = _xtime(a)
        b >>= 1
    return result


_SBOX, _INV_SBOX = _build_sbox()
_MUL = {n: [_mul(i, n) for i in range(256)] for n in (2, 3, 9, 11, 13, 14)}
_RCON = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36]
# ShiftRows as an index permutation over the column-major 16-byte state.
_SHIFT = [(r + 4 * ((c + r) % 4)) for c in range(4) for r in range(4)]
_INV_SHIFT = [0] * 16
for _i, _j in enumerate(_SHIFT):
    _INV_SHIFT[_j] = _i


def _expand_key(key: bytes) -> list[list[int]]:
    if len(key) != 16:
        raise ValueError("AES-128 needs a 16-byte key")
    words = [list(key[i : i + 4]) for i in range(0, 16, 4)]
    for i in range(4, 44):
        temp = list(words[i - 1])
        if i % 4 == 0:
            temp = temp[1:] + temp[:1]
            temp = [_SBOX[b] for b in temp]
            temp[0] ^= _RCON[i // 4 - 1]
        words.append([a ^ b for a, b in zip(words[i - 4], temp, strict=True)])
    return [[b for w in words[4 * r : 4 * r + 4] for b in w] for r in range(11)]


def _encrypt_block(block: bytes, rk: list[list[int]]) -> bytes:
    s = [b ^ k for b, k in zip(block, rk[0], strict=True)]
    m2, m3 = _MUL[2], _MUL[3]
    for rnd in range(1, 11):
        s = [_SBOX[s[i]] for i in _SHIFT]
        if rnd != 10:
            t = []
            for c in range(0, 16, 4):
                a0, a1, a2, a3 = s[c : c + 4]
                t += [
                    m2[a0] ^ m3[a1] ^ a2 ^ a3,
                    a0 ^ m2[a1] ^ m3[a2] ^ a3,
                    a0 ^ a1 ^ m2[a2] ^ m3[a3],
                    m3[a0] ^ a1 ^ a2 ^ m2[a3],
                ]
            s = t
        s = [b ^ k for b, k in zip(s, rk[rnd], strict=True)]
    return bytes(s)


def _decrypt_block(block: bytes, rk: list[list[int]]) -> bytes:
    s = [b ^ k for b, k in zip(block, rk[10], strict=True)]
    m9, m11, m13, m14 = _MUL[9], _MUL[11], _MUL[13], _MUL[14]
    for rnd in range(9, -1, -1):
        s = [_INV_SBOX[s[i]] for i in _INV_SHIFT]
        s = [b ^ k for b, k in zip(s, rk[rnd], strict=True)]
        if rnd != 0:
            t = []
            for c in range(0, 16, 4):
                a0, a1, a2, a3 = s[c : c + 4]
                t += [
                    m14[a0] ^ m11[a1] ^ m13[a2] ^ m9[a3],
                    m9[a0] ^ m14[a1] ^ m11[a2] ^ m13[a3],
                    m13[a0] ^ m9[a1] ^ m14[a2] ^ m11[a3],
                    m11[a0] ^ m13[a1] ^ m9[a2] ^ m14[a3],
                ]
            s = t
    return bytes(s)


def aes128_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """Encrypt ``data`` (length a multiple of 16; no padding added)."""
    if len(data) % 16:
        raise ValueError("data length must be a multiple of 16")
    rk = _expand_key(key)
    out = bytearray()
    prev = iv
    for i in range(0, len(data), 16):
        block = bytes(a ^ b for a, b in zip(data[i : i + 16], prev, strict=True))
        prev = _encrypt_block(block, rk)
        out += prev
    return bytes(out)


def aes128_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    if len(data) % 16:
        raise ValueError("data length must be a multiple of 16")
    rk = _expand_key(key)
    out = bytearray()
    prev = iv
    for i in range(0, len(data), 16):
        block = data[i : i + 16]
        out += bytes(a ^ b for a, b in zip(_decrypt_block(block, rk), prev, strict=True))
        prev = block
    return bytes(out)


# ---- KS ---------------------------------------------------------------------

SESSION_USER = 0
SESSION_ADMIN = 2
_RESERVED = {"_e": "expiry", "_t": "type", "_u": "user", "_m": "master", "_d": "data"}


class KsError(Exception):
    """A KS that must be refused; ``reason`` is Kaltura's name for why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # INVALID_STR, INVALID_PARTNER, EXPIRED, LOGOUT


@dataclass(frozen=True)
class KsInfo:
    ks: str
    version: int
    partner_id: int
    session_type: int
    user_id: str
    expiry: int
    privileges: dict[str, str] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.session_type >= 1

    def has_privilege(self, name: str) -> bool:
        return name in self.privileges or self.privileges.get("all") == "*"

    def privileges_string(self) -> str:
        return ",".join(f"{k}:{v}" if v != "" else k for k, v in self.privileges.items())


def parse_privileges(privileges: str) -> dict[str, str]:
    """'a:b, c ,*' -> {'a': 'b', 'c': '', 'all': '*'} (the v2 field map)."""
    out: dict[str, str] = {}
    for raw in privileges.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            item = "all:*"
        name, _, value = item.partition(":")
        out[name] = value
    return out


def _key(secret: str) -> bytes:
    return hashlib.sha1(secret.encode()).digest()[:16]


def sign_ks_v2(
    secret: str,
    partner_id: int,
    user_id: str,
    session_type: int,
    expiry: int,
    privileges: str = "",
    *,
    rand: bytes | None = None,
) -> str:
    """A KS v2 valid until ``expiry`` (absolute Unix seconds)."""
    fields = parse_privileges(privileges)
    fields["_e"] = str(int(expiry))
    fields["_t"] = str(int(session_type))
    fields["_u"] = str(user_id)
    plain = (rand if rand is not None else os.urandom(16)) + urlencode(fields).encode()
    signed = hashlib.sha1(plain).digest() + plain
    if len(signed) % 16:
        signed += b"\0" * (16 - len(signed) % 16)
    cipher = aes128_cbc_encrypt(_key(secret), b"\0" * 16, signed)
    return base64.urlsafe_b64encode(f"v2|{partner_id}|".encode() + cipher).decode()


def sign_ks_v1(
    secret: str,
    partner_id: int,
    user_id: str,
    session_type: int,
    expiry: int,
    privileges: str = "",
) -> str:
    rand = int.from_bytes(os.urandom(2), "big")
    info = f"{partner_id};{partner_id};{int(expiry)};{session_type};{rand};{user_id};{privileges}"
    sig = hashlib.sha1(secret.encode() + info.encode()).hexdigest()
    return base64.b64encode(f"{sig}|{info}".encode()).decode()


def _b64decode(ks: str) -> bytes:
    text = ks.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise KsError("INVALID_STR") from exc


def parse_ks(ks: str, partner_id: int, secrets: list[str]) -> KsInfo:
    """Verify the signature with one of ``secrets`` (admin secrets of ``partner_id``).

    Raises KsError(INVALID_STR / INVALID_PARTNER); expiry is NOT checked here,
    so a parsed KS can be cached and its expiry checked per call.
    """
    decoded = _b64decode(ks)
    if decoded.startswith(b"v2|"):
        return _parse_v2(ks, decoded, partner_id, secrets)
    return _parse_v1(ks, decoded, partner_id, secrets)


def _parse_v2(ks: str, decoded: bytes, partner_id: int, secrets: list[str]) -> KsInfo:
    parts = decoded.split(b"|", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        raise KsError("INVALID_STR")
    if int(parts[1]) != partner_id:
        raise KsError("INVALID_PARTNER")
    cipher = parts[2]
    if not cipher or len(cipher) % 16:
        raise KsError("INVALID_STR")
    for secret in secrets:
        plain = aes128_cbc_decrypt(_key(secret), b"\0" * 16, cipher).rstrip(b"\0")
        if len(plain) >= 36 and hashlib.sha1(plain[20:]).digest() == plain[:20]:
            break
    else:
        raise KsError("INVALID_STR")
    try:
        pairs = parse_qsl(plain[36:].decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise KsError("INVALID_STR") from exc
    values: dict[str, str] = {}
    privileges: dict[str, str] = {}
    for name, value in pairs:
        if name in _RESERVED:
            values[_RESERVED[name]] = value
        else:
            privileges[name] = value
    try:
        return KsInfo(
            ks=ks,
            version=2,
            partner_id=partner_id,
            session_type=int(values.get("type", "0") or 0),
            user_id=values.get("user", ""),
            expiry=int(values.get("expiry", "0") or 0),
            privileges=privileges,
        )
    except ValueError as exc:
        raise KsError("INVALID_STR") from exc


def _parse_v1(ks: str, decoded: bytes, partner_id: int, secrets: list[str]) -> KsInfo:
    sig, sep, info = decoded.partition(b"|")
    if not sep:
        raise KsError("INVALID_STR")
    fields = info.split(b";")
    if len(fields) < 7:
        raise KsError("INVALID_STR")
    try:
        text = [f.decode() for f in fields]
        if int(text[0]) != partner_id:
            raise KsError("INVALID_PARTNER")
        expiry, session_type = int(text[2]), int(text[3])
    except (UnicodeDecodeError, ValueError) as exc:
        raise KsError("INVALID_STR") from exc
    good = any(hashlib.sha1(s.encode() + info).hexdigest().encode() == sig for s in secrets)
    if not good:
        raise KsError("INVALID_STR")
    return KsInfo(
        ks=ks,
        version=1,
        partner_id=partner_id,
        session_type=session_type,
        user_id=text[5],
        expiry=expiry,
        privileges=parse_privileges(text[6]),
    )


def check_expiry(info: KsInfo, now: float | None = None) -> None:
    if info.expiry <= (time.time() if now is None else now):
        raise KsError("EXPIRED")
