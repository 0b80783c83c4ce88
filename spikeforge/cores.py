"""The core registry: one :class:`CoreSpec` per core, discovered from ``spikeforge.sim.specs``.

A spec ties a core's three layers together for the generic tools (``spikeforge sim``,
``verilog``, ``build``): how to build the Amaranth component from parameters, how to draw
random stimulus, how the golden model answers it, and how output beats become trace events.
The spec only *connects* the layers: the golden model never sees the RTL, and the RTL never
sees the golden model.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["CoreSpec", "ParamError", "all_cores", "get_core", "parse_param_value"]


class ParamError(ValueError):
    """A user-supplied parameter is unknown or has a bad value."""


@dataclass(frozen=True)
class CoreSpec:
    """How the generic tools drive one core.

    ``stimulus(params, steps, rng)`` returns ``{input_port: list_of_beats}`` where each beat is
    a dict matching the port's payload layout (nested lists for array fields).
    ``golden(params, stimulus)`` returns ``{output_port: list_of_beats}`` in the same form.
    ``to_dense(params, outputs)`` turns output beats into ``(array, value_kind)``: an
    ``(n_steps, n_index)`` integer array (the trace grid) and one of "binary", "ternary", "int".
    ``resolve(params)``, if given, expands presets and validates; it returns the final params.
    """

    name: str
    summary: str
    build: Callable[..., Any]
    defaults: dict
    stimulus: Callable[[dict, int, np.random.Generator], dict]
    golden: Callable[[dict, dict], dict]
    to_dense: Callable[[dict, dict], tuple]
    resolve: Callable[[dict], dict] | None = None
    # Parameters used by `spikeforge build` when none are given (a design that fills a board).
    build_defaults: dict = field(default_factory=dict)
    # Core clock `spikeforge build` (and the benchmark builds) request when none is given, in
    # MHz; None = the flow's default for the speed grade (150 MHz at grade 6).
    build_target_mhz: float | None = None
    # nextpnr router for `spikeforge build` and the benchmark builds ("router1", "router2"),
    # or a dict {speed grade: router} (e.g. {"8": "router2"}) for some grades only; None (or a
    # grade absent from the dict) = nextpnr's default (router1). See `router_for`.
    build_router: str | dict | None = None
    # nextpnr placer settings for `spikeforge build` and the benchmark builds, e.g.
    # {"timingweight": 30, "critexp": 4} (see `boards.build.PLACER_OPTIONS`); None = nextpnr's.
    build_placer: dict | None = None
    # Carry the reset on a global network in `spikeforge build` and the benchmark builds
    # (`ECP5PLL(global_reset=True)`): for designs too large for a fabric-routed reset.
    build_global_reset: bool = False
    # Natural unit of --steps for this core ("step", "tick", "vector", "token", ...).
    step_unit: str = "step"
    # Default --steps for `spikeforge sim` and `spikeforge demo`.
    demo_steps: int = 2000
    # Benchmark plan: parameter overrides to build, and (overrides, steps) to time in simulation.
    bench_builds: list = field(default_factory=list)
    bench_sims: list = field(default_factory=list)

    def params(self, overrides: dict | None = None) -> dict:
        """Defaults merged with ``overrides``; unknown names raise :class:`ParamError`."""
        merged = dict(self.defaults)
        for key, value in (overrides or {}).items():
            if key not in self.defaults:
                raise ParamError(
                    f"core {self.name!r} has no parameter {key!r}; "
                    f"known: {', '.join(sorted(self.defaults))}")
            merged[key] = value
        return self.resolve(merged) if self.resolve else merged

    def router_for(self, grade) -> str | None:
        """The nextpnr router of a build at speed grade ``grade`` (``"6"``, ``"8"``, ...):
        ``build_router``, or its entry for the grade when it is a dict (None if absent)."""
        if isinstance(self.build_router, dict):
            return self.build_router.get(str(grade))
        return self.build_router


def parse_param_value(text: str):
    """Parse a ``--param K=V`` value: int, bool, comma list of ints, else string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if "," in text:
        return [parse_param_value(part) for part in text.split(",") if part.strip()]
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


_REGISTRY: dict[str, CoreSpec] | None = None


def all_cores() -> dict[str, CoreSpec]:
    """Every registered core by name. Each module in ``spikeforge.sim.specs`` exports ``SPECS``."""
    global _REGISTRY
    if _REGISTRY is None:
        from spikeforge.sim import specs
        found: dict[str, CoreSpec] = {}
        for info in sorted(pkgutil.iter_modules(specs.__path__), key=lambda i: i.name):
            module = importlib.import_module(f"spikeforge.sim.specs.{info.name}")
            for spec in getattr(module, "SPECS", ()):
                found[spec.name] = spec
        _REGISTRY = found
    return _REGISTRY


def get_core(name: str) -> CoreSpec:
    cores = all_cores()
    if name not in cores:
        raise ParamError(f"unknown core {name!r}; known: {', '.join(sorted(cores))}")
    return cores[name]
