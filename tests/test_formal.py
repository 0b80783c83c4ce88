"""Formal checks (SymbiYosys via YoWASP, z3): every described core proven, and the checker
itself shown to catch broken cores. Skipped when the z3 binary (``z3-solver``) is missing."""

import re

import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.sim.formal import (FORMAL, FormalError, FormalSpec, check_core, formal_main,
                                   tool_paths)


def _tools_or_skip():
    try:
        tool_paths()
    except FormalError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("core", sorted(FORMAL))
def test_formal(core, capsys):
    _tools_or_skip()
    status = formal_main([core])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    runs = re.findall(rf"^{core}: PROVEN by k-induction, depth \d+ .*; output reachable: pass$"
                      rf"|^{core}: CHECKED by bounded model check, \d+ cycles from reset .*"
                      rf"; output reachable: pass$", out, re.M)
    assert len(runs) == len(FORMAL[core].cases), out
    assert "asserted: o: valid and payload hold until ready" in out
    assert re.search(r"^  asserted: beats: (0 <= in - out <= \d+|out <= in), counting ", out, re.M)


def test_formal_bad_input(capsys):
    assert formal_main(["nope"]) == 2
    assert capsys.readouterr().err.startswith("spikeforge formal: error: unknown core 'nope'")
    assert formal_main(["lif", "--param", "n=0"]) == 2
    assert capsys.readouterr().err == \
        "spikeforge formal: error: LIF parameter 'n' must be in 1..65536, not 0\n"
    assert formal_main(["lif", "--depth", "0"]) == 2
    assert "depth must be an integer in 1..1000, not 0" in capsys.readouterr().err


class _Register(wiring.Component):
    """A one-beat stream register of a ternary value; ``bug`` breaks it on purpose."""

    def __init__(self, bug=None):
        self.bug = bug
        layout = data.StructLayout({"q": signed(2)})
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        take = ~self.o.valid | self.o.ready
        if self.bug == "overwrite":
            take = 1                # the output is replaced even while it waits for ready
        m.d.comb += self.i.ready.eq(take)
        with m.If(take):
            m.d.sync += self.o.valid.eq(self.i.valid)
            with m.If((self.i.payload.q.as_unsigned() == 0b10) & (self.bug != "ternary")):
                m.d.sync += self.o.payload.q.eq(0)   # an illegal code is read as 0
            with m.Else():
                m.d.sync += self.o.payload.q.eq(self.i.payload.q)
        return m


def _register_spec():
    return FormalSpec(mode="prove", depth=4, bound=lambda core: 1, cover_depth=4,
                      invariants=lambda core, probe: [
                          ("register: one beat inside iff the output is valid",
                           probe.inflight == core.o.valid)])


@pytest.mark.parametrize("bug, mode, failed", [
    (None, "prove", None),
    ("overwrite", "prove", "o: valid and payload hold until ready"),
    ("ternary", "bmc", "o: no ternary field of a valid beat is 0b10"),
])
def test_checker_catches_bugs(bug, mode, failed):
    _tools_or_skip()
    res = check_core(_Register(bug), _register_spec(), mode=mode, label="register")
    assert res["mode"] == mode
    if failed is None:
        assert res["passed"] and res["status"] == "PASS", res
    else:
        assert not res["passed"] and res["status"] == "FAIL", res
        assert failed in res["detail"], res["detail"]
        assert "[from reset]" in res["detail"]
