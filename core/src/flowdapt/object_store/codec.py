"""The value encoding shared by cluster-memory backends that store bytes.

Pickle protocol 5 with out-of-band buffers: the pickle stream holds only the object structure,
and large contiguous buffers (numpy arrays, ``PickleBuffer``) travel beside it untouched. So:

- ``encode`` makes one copy of each buffer (into the single record it returns; the backend then
  writes that record once);
- ``decode`` makes one copy of each buffer, out of the backend's memory (an LMDB memory map),
  into a writable ``bytearray`` that the rebuilt arrays own. Nothing else is copied.

``bytes``/``bytearray`` values skip pickle entirely (stored raw, copied once each way).
Values that the standard pickler rejects (lambdas, local classes) are encoded with cloudpickle,
whose output the standard ``pickle.loads`` reads back.

Record layout (little endian)::

    u8  format (1 pickle5, 2 bytes, 3 bytearray)
    pickle5: u32 nbuf, u64 main_len, u64 len[nbuf], main, buffer 0, buffer 1, ...
    bytes/bytearray: the raw bytes
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

FORMAT_PICKLE5 = 1
FORMAT_BYTES = 2
FORMAT_BYTEARRAY = 3

_HEAD = struct.Struct("<BIQ")
_LEN = struct.Struct("<Q")
_BYTES_HEAD = bytes([FORMAT_BYTES])
_BYTEARRAY_HEAD = bytes([FORMAT_BYTEARRAY])


class CodecError(ValueError):
    """A stored record is not in a format this version can read (corrupt or foreign)."""


def _dumps(value: Any) -> tuple[bytes, list[memoryview]]:
    buffers: list[memoryview] = []

    def take(buffer: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(buffer.raw())
        except BufferError:  # not contiguous: keep it in the stream
            return True
        return False

    try:
        main = pickle.dumps(value, protocol=5, buffer_callback=take)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        buffers.clear()
        main = cloudpickle.dumps(value, protocol=5, buffer_callback=take)
    return main, buffers


def encode_parts(value: Any) -> list[bytes | memoryview]:
    """The record as a list of parts (no copy yet); ``b"".join(parts)`` is the record."""
    kind = type(value)
    if kind is bytes:
        return [_BYTES_HEAD, value]
    if kind is bytearray:
        return [_BYTEARRAY_HEAD, value]
    main, buffers = _dumps(value)
    head = _HEAD.pack(FORMAT_PICKLE5, len(buffers), len(main))
    lengths = b"".join(_LEN.pack(b.nbytes) for b in buffers)
    return [head, lengths, main, *buffers]


def encode(value: Any) -> bytes:
    """Encode a value into one record (one copy of each buffer)."""
    parts = encode_parts(value)
    return b"".join(parts)


def decode(record: bytes | bytearray | memoryview) -> Any:
    """Rebuild a value from a record. ``record`` may point into memory that goes away after this
    call returns (an LMDB read transaction): every buffer is copied out exactly once."""
    view = record if isinstance(record, memoryview) else memoryview(record)
    if not view.nbytes:
        raise CodecError("empty record")
    fmt = view[0]
    if fmt == FORMAT_BYTES:
        return bytes(view[1:])
    if fmt == FORMAT_BYTEARRAY:
        return bytearray(view[1:])
    if fmt != FORMAT_PICKLE5:
        raise CodecError(f"unknown record format {fmt}")
    _, nbuf, main_len = _HEAD.unpack_from(view, 0)
    offset = _HEAD.size
    lengths = [_LEN.unpack_from(view, offset + 8 * i)[0] for i in range(nbuf)]
    offset += 8 * nbuf
    main = view[offset : offset + main_len]
    offset += main_len
    if not nbuf:
        return pickle.loads(main)
    # One allocation and one memcpy for all buffers; the arrays keep the bytearray alive.
    total = sum(lengths)
    if offset + total > view.nbytes:
        raise CodecError("truncated record")
    owned = memoryview(bytearray(view[offset : offset + total]))
    pieces = []
    start = 0
    for length in lengths:
        pieces.append(owned[start : start + length])
        start += length
    return pickle.loads(main, buffers=pieces)


def encoded_size(parts: list[bytes | memoryview]) -> int:
    return sum(len(p) if isinstance(p, bytes | bytearray) else p.nbytes for p in parts)
