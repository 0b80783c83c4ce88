"""Formal checks (SymbiYosys via YoWASP, z3): every described core proven, and the checker
itself shown to catch broken cores. Skipped when the z3 binary (``z3-solver``) is missing."""

import re

import pytest
from amaranth.hdl import Module, Mux, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikeforge.sim.formal import (FORMAL, FormalError, FormalSpec, _flags_copied, _sby_text,
                                   check_core, formal_main, tool_paths)


def _tools_or_skip():
    try:
        tool_paths()
    except FormalError as exc:
        pytest.skip(str(exc))


_LINE = (r"^{core}(\.\w+)?: PROVEN by k-induction, depth \d+ .*; output reachable: "
         r"(pass|not checked)$"
         r"|^{core}(\.\w+)?: CHECKED by bounded model check, \d+ cycles from reset .*; "
         r"output reachable: (pass|not checked)$")


def _cases(core, deep):
    return [c for c in FORMAL[core].cases if deep or not getattr(c, "deep", False)]


def _check_output(core, out, deep):
    runs = re.findall(_LINE.format(core=core), out, re.M)
    assert len(runs) == len(_cases(core, deep)), out
    assert "asserted: o: valid and payload hold until ready" in out
    assert re.search(r"^  asserted: beats: (0 <= in - out <= \d+|out <= in), counting ", out, re.M)
    skipped = len(_cases(core, True)) - len(_cases(core, deep))
    assert len(re.findall(rf"^{core}: not run: the deeper check by .*; --deep runs it$",
                          out, re.M)) == skipped, out


@pytest.mark.parametrize("core", sorted(FORMAL))
def test_formal(core, capsys):
    """Every core's checks but the ``--deep`` ones: what ``make test`` runs."""
    _tools_or_skip()
    status = formal_main([core])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    _check_output(core, out, deep=False)


@pytest.mark.slow
@pytest.mark.parametrize("core", sorted(c for c in FORMAL if len(_cases(c, True))
                                        > len(_cases(c, False))))
def test_formal_deep(core, capsys):
    """The deeper checks (``--deep``): minutes each."""
    _tools_or_skip()
    status = formal_main([core, "--deep"])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    _check_output(core, out, deep=True)


def test_every_core_described():
    from spikeforge.cores import all_cores
    assert sorted(set(all_cores()) - set(FORMAL)) == []


def test_formal_bad_input(capsys):
    assert formal_main(["nope"]) == 2
    assert capsys.readouterr().err.startswith("spikeforge formal: error: unknown core 'nope'")
    assert formal_main(["lif", "--param", "n=0"]) == 2
    assert capsys.readouterr().err == \
        "spikeforge formal: error: LIF parameter 'n' must be in 1..65536, not 0\n"
    assert formal_main(["lif", "--depth", "0"]) == 2
    assert "depth must be an integer in 1..1000, not 0" in capsys.readouterr().err


class _Register(wiring.Component):
    """A one-beat stream register of a ternary value and a ``range(3)`` index, with a memory
    written at the index; ``bug`` breaks it on purpose."""

    def __init__(self, bug=None):
        self.bug = bug
        layout = data.StructLayout({"q": signed(2), "n": range(3), "first": 1, "last": 1})
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=2, depth=3, init=[])
        wr = mem.write_port()
        take = ~self.o.valid | self.o.ready
        if self.bug == "overwrite":
            take = 1                # the output is replaced even while it waits for ready
        m.d.comb += self.i.ready.eq(take)
        n_ok = (self.i.payload.n < 3) | (self.bug == "range")
        m.d.comb += [wr.en.eq(self.i.valid & take & ((self.i.payload.n < 3)
                                                      | (self.bug == "memory"))),
                     wr.addr.eq(self.i.payload.n), wr.data.eq(self.i.payload.q)]
        with m.If(take):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.n.eq(
                Mux(n_ok, self.i.payload.n, 0)), self.o.payload.last.eq(self.i.payload.last),
                self.o.payload.first.eq(self.i.payload.first ^ (self.bug == "order"))]
            with m.If((self.i.payload.q.as_unsigned() == 0b10) & (self.bug != "ternary")):
                m.d.sync += self.o.payload.q.eq(0)   # an illegal code is read as 0
            with m.Else():
                m.d.sync += self.o.payload.q.eq(self.i.payload.q)
        return m


def _register_spec():
    def invariants(core, probe):
        out = [("register: one beat inside iff the output is valid",
                probe.inflight == core.o.valid)]
        return out + (_flags_copied(core, probe) if probe.mode == "bmc" else [])
    return FormalSpec(mode="prove", depth=4, bound=lambda core: 1, cover_depth=4,
                      invariants=invariants)


@pytest.mark.parametrize("bug, mode, failed", [
    (None, "prove", None),
    (None, "bmc", None),
    ("overwrite", "prove", "o: valid and payload hold until ready"),
    ("ternary", "bmc", "o: no ternary field of a valid beat is 0b10"),
    ("range", "bmc", "o: every range(n) field of a valid beat is below n (< 3)"),
    ("memory", "bmc", "memories: every write address is below the depth: core.mem (depth 3)"),
    ("order", "bmc", "order: the output beat answering input beat n (any n) carries its "
                     "first/last"),
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


def test_sby_without_cover():
    text = _sby_text("prove", 4, 0)
    assert "cover" not in text and "check: depth 4" in text
