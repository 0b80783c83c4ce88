"""Stream helpers shared by the cores."""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer", "skid_ready_next"]


class SkidBuffer(wiring.Component):
    """A two-entry output register stage whose ``i.ready`` is a flip-flop.

    Placed as a pipeline's last stage, it is the pipeline's output register: a beat offered on
    ``i`` with ``o`` free (or being taken) is on ``o`` in the next cycle, exactly as from a
    plain output register. A beat that arrives while ``o`` is held by backpressure waits in a
    second (skid) register, and ``i.ready`` drops in the cycle after. So a pipeline that
    advances on ``i.ready`` stalls on a register, and ``o.ready`` drives only the two
    registers' enables, not the whole pipeline.

    Parameters
    ----------
    shape : shape-like
        The payload shape.

    Members
    -------
    i : ``In(stream.Signature(shape))``
        ``i.ready`` is the negation of one flip-flop (the skid entry is empty); it depends on
        no input of this cycle.
    o : ``Out(stream.Signature(shape))``
        ``o.valid`` and ``o.payload`` are flip-flops. Beats leave in the order they came in.

    Timing: latency 1 (``i`` to ``o``); throughput one beat per cycle while ``o.ready`` is
    high. Reset: both entries empty.
    """

    def __init__(self, shape):
        self.shape = shape
        super().__init__({"i": In(stream.Signature(shape)),
                          "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal(self.shape)
        m.d.comb += self.i.ready.eq(~skid_valid)
        # The skid entry follows the input whenever it is empty, so its data enable is a
        # flip-flop too; it only matters once `skid_valid` is set.
        with m.If(~skid_valid):
            m.d.sync += skid.eq(self.i.payload)
        with m.If(~self.o.valid | self.o.ready):
            # `o` is free: it takes the skid entry if there is one, else the input.
            m.d.sync += [self.o.valid.eq(skid_valid | self.i.valid),
                         self.o.payload.eq(Mux(skid_valid, skid, self.i.payload)),
                         skid_valid.eq(0)]
        with m.Elif(~skid_valid):
            # `o` is held: an input beat goes to the skid entry.
            m.d.sync += skid_valid.eq(self.i.valid)
        return m


def skid_ready_next(skid):
    """The value ``skid.i.ready`` takes at the next clock edge, from this cycle's ports.

    The skid entry empties when ``o`` is free (``~o.valid | o.ready``) and fills when an input
    beat arrives while ``o`` is held, so ``i.ready`` will be high exactly when
    ``~o.valid | o.ready | (i.ready & ~i.valid)``. A pipeline that feeds ``skid`` can register
    its whole-pipeline enable ``~out_valid | skid.i.ready`` a cycle ahead with this (its own
    ``out_valid`` next value beside it), so that the enable is a flip-flop.
    """
    return ~skid.o.valid | skid.o.ready | (skid.i.ready & ~skid.i.valid)
