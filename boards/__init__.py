"""ECP5 board targets and the open build flow (yosys -> nextpnr-ecp5 -> ecppack).

* :mod:`.targets` -- the board registry (:func:`list_boards`, :func:`get_target`);
* :mod:`.pll` -- the ``EHXPLLL`` clock generator;
* :mod:`.top` -- :class:`BenchTop`, the portable top that wraps any stream core;
* :mod:`.build` -- :func:`build_design` (bitstream + ``report.json``) and
  :func:`elaborate_only`.
"""

from .build import BuildError, build_design, default_target_mhz, elaborate_only
from .pll import ECP5PLL, pll_params
from .targets import DEFAULT_BOARD, get_target, list_boards
from .top import BenchTop

__all__ = ["BenchTop", "BuildError", "DEFAULT_BOARD", "ECP5PLL", "build_design",
           "default_target_mhz", "elaborate_only", "get_target", "list_boards", "pll_params"]
