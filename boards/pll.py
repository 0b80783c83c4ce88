"""ECP5 ``EHXPLLL`` clock generator: a ``sync`` domain of a requested frequency.

:func:`pll_params` searches the divider settings the way nextpnr's ``ecppll`` tool does;
:class:`ECP5PLL` instantiates the primitive, tells nextpnr the output frequency and holds the
domain in reset until the PLL locks.
"""


from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import ClockDomain, ClockSignal, Const, Instance, Module, ResetSignal
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["PLLParams", "pll_params", "ECP5PLL"]

# ECP5 sysCLOCK limits (FPGA-TN-02200), in MHz; the same bounds ``ecppll`` searches within.
PFD_MIN, PFD_MAX = 3.125, 400.0
VCO_MIN, VCO_MAX = 400.0, 800.0
CLKI_MIN, CLKI_MAX = 8.0, 400.0
CLKOP_MIN, CLKOP_MAX = 3.125, 400.0
CLKI_DIV_MAX, CLKFB_DIV_MAX, CLKOP_DIV_MAX = 128, 80, 128


@dataclass(frozen=True)
class PLLParams:
    """One ``EHXPLLL`` setting with feedback from ``CLKOP``.

    ``f_out_mhz = f_in_mhz / clki_div * clkfb_div`` and ``f_vco_mhz = f_out_mhz * clkop_div``.
    """

    f_in_mhz: float
    f_request_mhz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_pfd_mhz: float
    f_vco_mhz: float
    f_out_mhz: float

    @property
    def clkop_cphase(self) -> int:
        # Half a period of phase shift, as Lattice's own tools and ``ecppll`` emit.
        return self.clkop_div // 2

    @property
    def error(self) -> float:
        """Relative error of the achieved output frequency."""
        return abs(self.f_out_mhz - self.f_request_mhz) / self.f_request_mhz


def _g(value) -> str:
    return f"{float(value):g}"


def _mhz(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise TypeError(f"PLL {name} must be a number of MHz, not {value!r}")
    if not value > 0:
        raise ValueError(f"PLL {name} must be positive, not {value!r}")
    return Fraction(value).limit_denominator(1_000_000)


def pll_params(f_in_mhz, f_out_mhz, *, tolerance=0.01) -> PLLParams:
    """Find ``EHXPLLL`` dividers that make ``f_out_mhz`` from ``f_in_mhz``.

    Searches every ``CLKI_DIV``/``CLKFB_DIV``/``CLKOP_DIV`` with the phase detector at or above
    3.125 MHz and the VCO within 400-800 MHz, keeps the smallest output error and, among equal
    errors, the VCO closest to 600 MHz (the ``ecppll`` rule). Raises :class:`ValueError` naming
    the frequency when no setting comes within ``tolerance`` (relative, default 1 %).
    """
    f_in = _mhz(f_in_mhz, "input frequency")
    f_out = _mhz(f_out_mhz, "output frequency")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
        raise TypeError(f"PLL tolerance must be a number, not {tolerance!r}")
    if not 0 <= tolerance < 1:
        raise ValueError(f"PLL tolerance must be in [0, 1), not {tolerance!r}")
    if not CLKI_MIN <= f_in <= CLKI_MAX:
        raise ValueError(f"PLL input frequency must be within {CLKI_MIN:g}-{CLKI_MAX:g} MHz, "
                         f"not {_g(f_in_mhz)} MHz")
    if not CLKOP_MIN <= f_out <= CLKOP_MAX:
        raise ValueError(f"PLL cannot make {_g(f_out_mhz)} MHz: the output must be within "
                         f"{CLKOP_MIN:g}-{CLKOP_MAX:g} MHz")

    best = None  # (error, vco distance from 600, clki_div, clkfb_div, clkop_div)
    for clki_div in range(1, CLKI_DIV_MAX + 1):
        f_pfd = f_in / clki_div
        if f_pfd < PFD_MIN:
            break
        if f_pfd > PFD_MAX:
            continue
        for clkfb_div in range(1, CLKFB_DIV_MAX + 1):
            out = f_pfd * clkfb_div
            if out > CLKOP_MAX:
                break
            error = abs(out - f_out)
            if best is not None and error > best[0]:
                continue
            # The VCO runs at out * clkop_div: take the in-range divisor nearest 600 MHz.
            lo = max(1, -(-Fraction(VCO_MIN) // out))
            hi = min(CLKOP_DIV_MAX, Fraction(VCO_MAX) // out)
            if lo > hi:
                continue
            clkop_div = min(range(int(lo), int(hi) + 1), key=lambda d: abs(out * d - 600))
            key = (error, abs(out * clkop_div - 600), clki_div, clkfb_div, clkop_div)
            if best is None or key[:2] < best[:2]:
                best = key
    if best is None:
        raise ValueError(f"PLL cannot make {_g(f_out_mhz)} MHz from {_g(f_in_mhz)} MHz")
    _, _, clki_div, clkfb_div, clkop_div = best
    achieved = f_in / clki_div * clkfb_div
    params = PLLParams(
        f_in_mhz=float(f_in), f_request_mhz=float(f_out),
        clki_div=clki_div, clkfb_div=clkfb_div, clkop_div=clkop_div,
        f_pfd_mhz=float(f_in / clki_div), f_vco_mhz=float(achieved * clkop_div),
        f_out_mhz=float(achieved))
    if params.error > tolerance:
        raise ValueError(
            f"PLL cannot make {_g(f_out_mhz)} MHz from {_g(f_in_mhz)} MHz within "
            f"{tolerance:.2%}: the closest is {params.f_out_mhz:.4f} MHz")
    return params


def _attr_mhz(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


class ECP5PLL(wiring.Component):
    """An ``EHXPLLL`` clocking domain ``domain`` at (close to) ``f_out_mhz``.

    Parameters
    ----------
    f_in_mhz, f_out_mhz : number
        Reference and requested output frequency, in MHz; see :func:`pll_params`.
    domain : str
        Clock domain whose clock and reset this module drives (default ``"sync"``); the
        parent module defines it (``m.domains.sync = ClockDomain()``).
    tolerance : float
        Largest accepted relative frequency error.
    global_reset : bool
        Drive the domain's reset through a ``DCCA`` onto a global network (default ``False``).
        nextpnr promotes only clock nets to globals; without this, the synchronous reset of a
        design with tens of thousands of flip-flops is routed through the general fabric to
        every one of their ``LSR`` pins.

    Members
    -------
    clk_in : In(1)
        Reference clock, straight from the oscillator's input buffer.
    locked : Out(1)
        The PLL's ``LOCK`` output.

    The domain's reset is asserted asynchronously while ``locked`` is low and released
    synchronously to the new clock (two flip-flops later). ``params.f_out_mhz`` is the frequency
    actually produced; it is also written into the ``FREQUENCY_PIN_CLKOP`` attribute so nextpnr
    times the domain against it.
    """

    clk_in: In(1)
    locked: Out(1)

    def __init__(self, f_in_mhz, f_out_mhz, *, domain="sync", tolerance=0.01,
                 global_reset=False):
        if not isinstance(domain, str) or not domain:
            raise TypeError(f"PLL domain must be a non-empty string, not {domain!r}")
        if not isinstance(global_reset, bool):
            raise TypeError(f"PLL global_reset must be a bool, not {global_reset!r}")
        self.params = pll_params(f_in_mhz, f_out_mhz, tolerance=tolerance)
        self.domain = domain
        self.global_reset = global_reset
        super().__init__()

    @property
    def f_out_mhz(self) -> float:
        return self.params.f_out_mhz

    def elaborate(self, platform):
        m = Module()
        p = self.params
        clk = ClockSignal(self.domain)
        m.submodules.pll = Instance(
            "EHXPLLL",
            # Read by nextpnr (clock constraint of CLKOP) and by Lattice's tools; the loop
            # filter settings are the ones ``ecppll`` and Diamond write.
            a_FREQUENCY_PIN_CLKI=_attr_mhz(p.f_in_mhz),
            a_FREQUENCY_PIN_CLKOP=_attr_mhz(p.f_out_mhz),
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC",
            p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p.clki_div,
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=p.clkop_div,
            p_CLKOP_CPHASE=p.clkop_cphase,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p.clkfb_div,
            i_RST=Const(0),
            i_STDBY=Const(0),
            i_CLKI=self.clk_in,
            o_CLKOP=clk,
            i_CLKFB=clk,
            i_PHASESEL0=Const(0),
            i_PHASESEL1=Const(0),
            i_PHASEDIR=Const(1),
            i_PHASESTEP=Const(1),
            i_PHASELOADREG=Const(1),
            i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0),
            o_LOCK=self.locked,
        )
        if not self.global_reset:
            m.submodules.reset_sync = ResetSynchronizer(~self.locked, domain=self.domain)
            return m
        # The synchroniser drives the reset of a private domain on the same clock; a DCCA
        # (global clock buffer, always enabled) carries it to the domain's reset.
        local = f"{self.domain}_rst_local"
        m.domains += ClockDomain(local, local=True)
        m.d.comb += ClockSignal(local).eq(clk)
        m.submodules.reset_sync = ResetSynchronizer(~self.locked, domain=local)
        m.submodules.reset_buf = Instance("DCCA", i_CLKI=ResetSignal(local), i_CE=Const(1),
                                          o_CLKO=ResetSignal(self.domain))
        return m
