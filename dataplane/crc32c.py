"""CRC32-C (Castagnoli), pure Python and table-driven: the reference for `rte_hash_crc`.

Reflected polynomial 0x82F63B78. `crc32c(b"123456789") == 0xE3069283` (the check
value); note that zlib.crc32 is a different CRC (0xCBF43926 for the same input).
"""
from __future__ import annotations

_POLY = 0x82F63B78


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32c_raw(data: bytes, crc: int) -> int:
    """The CRC register after `data`, from `crc`, with no inversion on either side.

    This is what DPDK's `rte_hash_crc(data, len, init)` returns (SSE4.2 `crc32`
    instruction semantics): the caller's init value and no final XOR.
    """
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def crc32c(data: bytes, value: int = 0) -> int:
    """The standard CRC32-C (init 0xFFFFFFFF, final XOR 0xFFFFFFFF).

    Like zlib.crc32, `value` is the result over preceding data, so
    `crc32c(b, crc32c(a)) == crc32c(a + b)`.
    """
    return crc32c_raw(data, value ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
