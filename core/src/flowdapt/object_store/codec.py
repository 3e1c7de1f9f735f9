"""The value encoding shared by cluster-memory backends that store bytes.

Pickle protocol 5 with out-of-band buffers: the pickle stream holds only the object structure,
and large contiguous buffers (numpy arrays, ``PickleBuffer``) travel beside it untouched. So:

- ``encode`` makes one copy of each buffer (into the single record it returns; the backend then
  writes that record once);
- ``decode`` makes one copy of each buffer, out of the backend's memory (an LMDB memory map),
  into a writable ``bytearray`` that the rebuilt arrays own. Nothing else is copied.

Fast paths, same guarantees: ``bytes``/``bytearray`` are stored raw; a plain numpy array (not a
subclass, not object or structured dtype, C- or Fortran-contiguous) is stored as dtype, shape and
its raw bytes, rebuilt with ``numpy.frombuffer`` (no pickle machinery at all); buffers under
``OUT_OF_BAND_MIN`` stay inside the pickle stream, where they are cheaper. Values that the
standard pickler rejects (lambdas, local classes) are encoded with cloudpickle, whose output the
standard ``pickle.loads`` reads back. numpy is imported only when an array record is decoded.

Record layout (little endian)::

    u8 format
    1 pickle5:    u32 nbuf, u64 main_len, u64 len[nbuf], main, buffer 0, buffer 1, ...
    2 bytes, 3 bytearray: the raw bytes
    4 ndarray:    u8 order (C|F), u8 len(dtype), u8 ndim, dtype str, u64 shape[ndim], data
    5 pickle:     a pickle stream with no out-of-band buffers
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

FORMAT_PICKLE5 = 1
FORMAT_BYTES = 2
FORMAT_BYTEARRAY = 3
FORMAT_NDARRAY = 4
FORMAT_PICKLE = 5

#: Buffers smaller than this stay inside the pickle stream (copied once either way; fewer steps).
OUT_OF_BAND_MIN = 32 * 1024

_HEAD = struct.Struct("<BIQ")
_LEN = struct.Struct("<Q")
_ARRAY_HEAD = struct.Struct("<BBBB")
_BYTES_HEAD = bytes([FORMAT_BYTES])
_BYTEARRAY_HEAD = bytes([FORMAT_BYTEARRAY])
_PICKLE_HEAD = bytes([FORMAT_PICKLE])

_numpy: Any = None
_dtypes: dict[bytes, Any] = {}


class CodecError(ValueError):
    """A stored record is not in a format this version can read (corrupt or foreign)."""


def _dumps(value: Any) -> tuple[bytes, list[memoryview]]:
    buffers: list[memoryview] = []

    def take(buffer: pickle.PickleBuffer) -> bool:
        try:
            raw = buffer.raw()
        except BufferError:  # not contiguous: keep it in the stream
            return True
        if raw.nbytes < OUT_OF_BAND_MIN:
            return True  # small: cheaper in the stream than as a separate buffer
        buffers.append(raw)
        return False

    try:
        main = pickle.dumps(value, protocol=5, buffer_callback=take)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        buffers.clear()
        main = cloudpickle.dumps(value, protocol=5, buffer_callback=take)
    return main, buffers


def _array_parts(value: Any) -> list[bytes | memoryview] | None:
    """The fast-path record of a plain numpy array, or None when pickle must handle it."""
    dtype = value.dtype
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or value.ndim > 255:
        return None
    flags = value.flags
    if flags.c_contiguous:
        order, flat = b"C", value.reshape(-1)
    elif flags.f_contiguous:
        order, flat = b"F", value.T.reshape(-1)
    else:
        return None
    code = dtype.str.encode()
    if len(code) > 255:
        return None
    head = _ARRAY_HEAD.pack(FORMAT_NDARRAY, order[0], len(code), value.ndim)
    shape = struct.pack(f"<{value.ndim}Q", *value.shape)
    data = memoryview(flat.view("u1")) if flat.size else b""
    return [head, code, shape, data]


def encode_parts(value: Any) -> list[bytes | memoryview]:
    """The record as a list of parts (no copy yet); ``b"".join(parts)`` is the record."""
    kind = type(value)
    if kind is bytes:
        return [_BYTES_HEAD, value]
    if kind is bytearray:
        return [_BYTEARRAY_HEAD, value]
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
        parts = _array_parts(value)
        if parts is not None:
            return parts
    main, buffers = _dumps(value)
    if not buffers:
        return [_PICKLE_HEAD, main]
    head = _HEAD.pack(FORMAT_PICKLE5, len(buffers), len(main))
    lengths = b"".join(_LEN.pack(b.nbytes) for b in buffers)
    return [head, lengths, main, *buffers]


def encode(value: Any) -> bytes:
    """Encode a value into one record (one copy of each buffer)."""
    return b"".join(encode_parts(value))


def _decode_array(view: memoryview, offset: int) -> Any:
    global _numpy
    if _numpy is None:
        import numpy

        _numpy = numpy
    _, order, code_len, ndim = _ARRAY_HEAD.unpack_from(view, offset)
    offset += _ARRAY_HEAD.size
    code = bytes(view[offset : offset + code_len])
    offset += code_len
    shape = struct.unpack_from(f"<{ndim}Q", view, offset)
    offset += 8 * ndim
    dtype = _dtypes.get(code)
    if dtype is None:
        dtype = _dtypes[code] = _numpy.dtype(code.decode())
    flat = _numpy.frombuffer(bytearray(view[offset:]), dtype=dtype)  # the one copy
    if order == 70:  # "F"
        return flat.reshape(shape[::-1]).T
    return flat.reshape(shape)


def decode(record: bytes | bytearray | memoryview, offset: int = 0) -> Any:
    """Rebuild a value from a record that starts at ``offset``. ``record`` may point into memory
    that goes away after this call returns (an LMDB read transaction): every buffer is copied
    out exactly once."""
    view = record if type(record) is memoryview else memoryview(record)
    try:
        fmt = view[offset]
    except IndexError:
        raise CodecError("empty record") from None
    if fmt == FORMAT_PICKLE:
        return pickle.loads(view[offset + 1 :])
    if fmt == FORMAT_NDARRAY:
        return _decode_array(view, offset)
    if fmt == FORMAT_BYTES:
        return bytes(view[offset + 1 :])
    if fmt == FORMAT_BYTEARRAY:
        return bytearray(view[offset + 1 :])
    if fmt != FORMAT_PICKLE5:
        raise CodecError(f"unknown record format {fmt}")
    _, nbuf, main_len = _HEAD.unpack_from(view, offset)
    offset += _HEAD.size
    lengths = [_LEN.unpack_from(view, offset + 8 * i)[0] for i in range(nbuf)]
    offset += 8 * nbuf
    main = view[offset : offset + main_len]
    offset += main_len
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
