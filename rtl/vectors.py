"""Payload layouts and parameter rules shared by the Word2Spike cores (absmean, poisson,
ratedecode and their chain).

A *vector* of ``d`` elements travels as ``ceil(d/p)`` beats of ``p`` lanes; element ``j`` is
lane ``j % p`` of beat ``j // p``. ``first`` marks the first beat and ``last`` the last beat
of a vector; ``empty`` is the number of unused top lanes of the ``last`` beat (0 on every other
beat), as in Avalon-ST. A *spike window* is ``W`` ticks of such a vector, tick after tick, with
``tick_last`` on the last beat of every tick and ``first``/``last`` on the first and last beat
of the window.
"""

from numbers import Integral

from amaranth.hdl import unsigned
from amaranth.lib import data

__all__ = ["check_int", "check_lanes", "check_d_max", "empty_shape", "vector_layout",
           "tick_layout"]


def check_int(core, name, value, lo, hi):
    """``value`` as an int if it is an integer in ``lo..hi``; else TypeError/ValueError."""
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{core} parameter {name!r} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{core} parameter {name!r} must be in {lo}..{hi}, not {value}")
    return value


def check_lanes(core, p):
    """Lanes per beat: a power of two in 1..64 (so every ``empty`` code is meaningful)."""
    if not isinstance(p, Integral) or isinstance(p, bool):
        raise TypeError(f"{core} parameter 'p' must be an integer, not {p!r}")
    p = int(p)
    if not (1 <= p <= 64 and p & (p - 1) == 0):
        raise ValueError(f"{core} parameter 'p' must be a power of two in 1..64, not {p}")
    return p


def check_d_max(core, d_max, p):
    """Maximum vector length: 1..65536 and a multiple of ``p``."""
    d_max = check_int(core, "d_max", d_max, 1, 65536)
    if d_max % p:
        raise ValueError(f"{core} parameter 'd_max' must be a multiple of p={p}, not {d_max}")
    return d_max


def empty_shape(p):
    """``empty`` counts 0..p-1 unused lanes: log2(p) bits (none for p = 1)."""
    return unsigned((p - 1).bit_length())


def vector_layout(field, shape, p):
    """``{field: p x shape, "empty", "first", "last"}``: one beat of a framed vector."""
    return data.StructLayout({field: data.ArrayLayout(shape, p), "empty": empty_shape(p),
                              "first": 1, "last": 1})


def tick_layout(p):
    """``{"s": p spike bits, "empty", "first", "last", "tick_last"}``: a spike-window beat."""
    return data.StructLayout({"s": data.ArrayLayout(unsigned(1), p), "empty": empty_shape(p),
                              "first": 1, "last": 1, "tick_last": 1})
