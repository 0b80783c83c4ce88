"""Pack and unpack stream payloads between Python values and the flat bit vectors on the wire.

A payload value mirrors its Amaranth layout: a dict for a :class:`~amaranth.lib.data.StructLayout`,
a list for an :class:`~amaranth.lib.data.ArrayLayout`, an int for a plain shape. Signed fields are
sign-extended on unpack. This is wire formatting only; it has no knowledge of any core.
"""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["Codec", "payload_width"]


def payload_width(shape) -> int:
    return Shape.cast(shape).width


class Codec:
    """Converts between payload values and ints for one payload shape."""

    def __init__(self, shape):
        self.shape = shape
        self.width = payload_width(shape)
        self._pack = self._packer(shape, 0)
        self._unpack = self._unpacker(shape, 0)

    def pack(self, value) -> int:
        return self._pack(value)

    def unpack(self, raw: int):
        return self._unpack(int(raw))

    # The closures are built once per shape so packing a long stream stays cheap.
    def _packer(self, shape, offset):
        if isinstance(shape, data.StructLayout):
            parts = [(name, self._packer(field.shape, offset + field.offset)) for name, field in shape]

            def pack_struct(value):
                missing = set(name for name, _ in parts) - set(value)
                if missing:
                    raise ValueError(f"payload is missing field(s) {sorted(missing)}")
                return sum(fn(value[name]) for name, fn in parts)
            return pack_struct
        if isinstance(shape, data.ArrayLayout):
            parts = [self._packer(field.shape, offset + field.offset) for _, field in shape]

            def pack_array(value):
                if len(value) != len(parts):
                    raise ValueError(f"payload array needs {len(parts)} elements, not {len(value)}")
                return sum(fn(v) for fn, v in zip(parts, value))
            return pack_array
        sh = Shape.cast(shape)
        width, signed = sh.width, sh.signed
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        mask = (1 << width) - 1

        def pack_int(value):
            value = int(value)
            if not lo <= value <= hi:
                raise ValueError(f"payload value {value} does not fit {sh!r}")
            return (value & mask) << offset
        return pack_int

    def _unpacker(self, shape, offset):
        if isinstance(shape, data.StructLayout):
            parts = [(name, self._unpacker(field.shape, offset + field.offset)) for name, field in shape]
            return lambda raw: {name: fn(raw) for name, fn in parts}
        if isinstance(shape, data.ArrayLayout):
            parts = [self._unpacker(field.shape, offset + field.offset) for _, field in shape]
            return lambda raw: [fn(raw) for fn in parts]
        sh = Shape.cast(shape)
        width, signed = sh.width, sh.signed
        mask = (1 << width) - 1
        sign = 1 << (width - 1) if width else 0

        def unpack_int(raw):
            v = (raw >> offset) & mask
            if signed and v & sign:
                v -= 1 << width
            return v
        return unpack_int
