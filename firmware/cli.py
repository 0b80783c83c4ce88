"""Front ends for ``spikeforge run`` and ``spikeforge program``.

``spikeforge run`` talks to a design's bridge, on a board (``--port``) or in simulation
(``--sim``, the same host code over the RTL UART under cocotb/Verilator): it identifies the
design, loads a memory image, streams the core's random stimulus in, reads the outputs and
compares them bit for bit with the golden model. ``spikeforge program`` loads a bitstream
with openFPGALoader (:func:`program_command` gives the command line per board).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

__all__ = ["bridged_design", "image_memories", "make_bridge", "program_command", "run_main"]

#: Board name prefix -> openFPGALoader arguments selecting the board's programmer.
_PROGRAMMERS = {
    "ulx3s-": ["-b", "ulx3s"],                  # the FT231X, also the UART
    "orangecrab-": ["-b", "orangeCrab"],        # DFU (plug in with the button pressed)
    "ecpix5-": ["-b", "ecpix5"],                # on-board FT2232H
    "ecp5-5g-evn": ["-b", "ecp5_evn"],          # on-board FT2232H
    "versa-ecp5": ["-c", "ft2232"],             # on-board FT2232H (both Versa boards)
    "icepi-zero": ["-b", "icepi-zero"],         # on-board FT231X
    "icesugar-pro": ["-c", "cmsisdap", "--vid", "0x1d50", "--pid", "0x602b"],   # DAPLink
    "colorlight-5a-75b": ["-b", "colorlight"],  # needs an external JTAG adapter: pass cable=
}
# Boards whose programming needs an adapter the board does not carry.
_NEEDS_CABLE = ("colorlight-5a-75b", "logicbone-", "butterstick")


def program_command(board, bitstream, *, flash=False, cable=None) -> list[str]:
    """The openFPGALoader command line that loads ``bitstream`` into ``board``.

    SRAM (volatile) by default, the SPI flash with ``flash=True``. ``cable`` names an
    openFPGALoader cable (``-c``) for boards programmed through an external JTAG adapter
    (Colorlight 5A-75B, Logicbone, ButterStick); it overrides the board's default otherwise.
    Raises :exc:`ValueError` for an unknown board or a board that needs ``cable``.
    """
    from spikeforge.boards.targets import TARGETS
    if not isinstance(board, str) or board not in TARGETS:
        raise ValueError(f"unknown board {board!r}; known boards: {', '.join(TARGETS)}")
    args = next((a for prefix, a in _PROGRAMMERS.items() if board.startswith(prefix)), None)
    if cable is not None:
        if not isinstance(cable, str) or not cable:
            raise ValueError(f"cable must be an openFPGALoader cable name, not {cable!r}")
        # Keep the board preset (-b) if there is one; the cable replaces any other selection.
        args = (args[:2] if args and args[0] == "-b" else []) + ["-c", cable]
    elif args is None or board.startswith(_NEEDS_CABLE):
        raise ValueError(f"board {board!r} has no on-board programmer openFPGALoader knows; "
                         f"pass cable= (an openFPGALoader cable name, e.g. 'ft2232')")
    if board.startswith("orangecrab-"):
        flash = False       # DFU writes the bootloader's user slot in flash either way
    return ["openFPGALoader", *args, *(["-f"] if flash else []), str(bitstream)]


def image_memories(specs: dict) -> dict:
    """A :class:`~spikeforge.rtl.bridge.WindowMemory` per image memory (``{name: MemorySpec}``):
    depth = number of entries, width = the fewest bits holding ``lo..hi`` (signed if lo < 0).
    For simulating a design whose memories mirror an image."""
    from spikeforge.rtl.bridge import WindowMemory
    out = {}
    for name, (shape, lo, hi) in specs.items():
        depth = max(1, math.prod(shape))
        if lo < 0:
            width = max((-lo - 1).bit_length(), hi.bit_length()) + 1
        else:
            width = max(1, hi.bit_length())
        out[name] = WindowMemory(width=width, depth=depth, signed=lo < 0)
    return out


def make_bridge(cores, *, image_specs=None, **bridge_kwargs):
    """A :class:`~spikeforge.rtl.bridge.Bridge` in front of registered cores.

    ``cores`` is ``{core name: resolved params}``. One core is attached as it is (design = its
    name, params = its params); several sit side by side in a
    :class:`~spikeforge.rtl.bridge.Composite` (design ``"a+b"``, params ``{"a": ..., "b":
    ...}``, streams ``a_i``, ``b_o``, ...). ``image_specs`` adds a memory per image memory
    (:func:`image_memories`). For a board: ``boards.uart.build_bridged(make_bridge(...), ...)``.
    """
    from spikeforge.cores import get_core
    from spikeforge.rtl.bridge import Bridge, Composite
    if not isinstance(cores, dict) or not cores:
        raise ValueError(f"make_bridge needs {{core name: params}}, not {cores!r}")
    specs = {name: get_core(name) for name in cores}
    memories = image_memories(image_specs) if image_specs else None
    built = {name: _bridgeable(specs[name].build(**params)) for name, params in cores.items()}
    if len(cores) == 1:
        (design, params), = cores.items()
        core = built[design]
    else:
        design, params, core = "+".join(cores), dict(cores), Composite(**built)
    return Bridge(core, design=design, params=params, memories=memories, **bridge_kwargs)


def _bridgeable(core):
    # A core whose streams do not fit bridge frames offers a bridge view (the LM: its wide
    # `w` rows go through a staging memory, see spikeforge.rtl.lm.LMBridged).
    return core.bridged() if callable(getattr(core, "bridged", None)) else core


def _send(dev, name, port, beats):
    """Send ``beats`` to input stream ``port``: as they are, or through the core's host helper."""
    if name == "lm" and port.endswith("w"):
        from .lm import write_beats
        write_beats(dev, beats, prefix=port[:-1])
    else:
        dev.send_beats(port, beats)


def bridged_design(cores, *, image_specs=None, divisor=8, **bridge_kwargs):
    """What ``spikeforge run --sim`` simulates: :func:`make_bridge` behind a
    :class:`~spikeforge.rtl.bridge.UARTBridge` with ``divisor`` cycles per bit."""
    from spikeforge.rtl.bridge import UARTBridge
    return UARTBridge(make_bridge(cores, image_specs=image_specs, **bridge_kwargs),
                      divisor=divisor)


def _cores_of(info):
    """``[(name, spec, params, stream prefix)]`` for the registered cores of a design."""
    from spikeforge.cores import all_cores
    registry = all_cores()
    if info.design in registry:
        spec = registry[info.design]
        return [(info.design, spec, info.params, "")]
    names = info.design.split("+")
    if all(n in registry for n in names) and set(names) == set(info.params):
        return [(n, registry[n], info.params[n], f"{n}_") for n in names]
    return []


def _sim_cores(designs, pairs) -> dict:
    from spikeforge.cores import get_core
    names = [n.strip() for n in designs.split(",") if n.strip()]
    overrides = {n: {} for n in names}
    for key, value in _param_pairs(pairs).items():
        core, _, name = key.rpartition(".")
        if not core:
            if len(names) != 1:
                raise ValueError(f"with several designs, --param takes CORE.K=V, not {key!r}")
            core = names[0]
        if core not in overrides:
            raise ValueError(f"--param {key}: {core!r} is not one of the designs "
                             f"{', '.join(names)}")
        overrides[core][name] = value
    return {n: get_core(n).params(overrides[n]) for n in names}


def _param_pairs(pairs) -> dict:
    from spikeforge.cores import parse_param_value
    out = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise ValueError(f"--param expects K=V, not {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = parse_param_value(value)
    return out


def _run(args) -> int:
    import numpy as np
    from .image import MemorySpec, load_image
    from .runtime import Device, SerialTransport, SimTransport

    image = None
    if args.image:
        image = load_image(args.image)
    if args.sim:
        cores = _sim_cores(args.design, args.param)
        specs = None
        if image is not None:
            meta, arrays = image
            specs = {n: MemorySpec(arrays[n].shape, d["lo"], d["hi"])
                     for n, d in meta["memories"].items()}
        top = bridged_design(cores, image_specs=specs, divisor=args.divisor)
        transport = SimTransport(top, progress=lambda m: print(m, flush=True))
    else:
        transport = SerialTransport(args.port, args.baud)

    with Device(transport) as dev:
        info = dev.identify()
        print(f"design {info.design!r} (id {info.design_id:08x}, protocol {info.protocol}): "
              f"{len(info.streams)} streams, {len(info.memories)} memories")
        for s in info.streams.values():
            print(f"  stream {s.index} {s.name!r}: {s.dir}, {s.width} bits, FIFO {s.fifo}")
        for mem in info.memories.values():
            print(f"  memory {mem.index} {mem.name!r}: {mem.depth} x {mem.width} bits"
                  f"{' signed' if mem.signed else ''}{'' if mem.writable else ' read-only'}")
        if image is not None:
            written = dev.load_image(image, verify=True)
            print(f"image {args.image}: wrote and verified "
                  + ", ".join(f"{n} ({k} words)" for n, k in written.items()))
        if args.identify:
            return 0
        units = _cores_of(info)
        if not units:
            print(f"design {info.design!r} is not made of registered cores: nothing to compare")
            return 0
        mismatches = 0
        for name, spec, raw_params, prefix in units:
            params = spec.params({k: v for k, v in raw_params.items() if k in spec.defaults})
            steps = args.steps if args.steps is not None else min(spec.demo_steps, 100)
            stimulus = spec.stimulus(params, steps, np.random.default_rng(args.seed))
            expected = spec.golden(params, stimulus)
            start = time.monotonic()
            # Like the bench: a phase starts once the core has taken every beat of the last.
            for phase in stimulus if isinstance(stimulus, list) else [stimulus]:
                for port, beats in phase.items():
                    _send(dev, name, prefix + port, beats)
                for port in phase:
                    dev.wait_taken(prefix + port)
            bad_beats, beats_out = 0, 0
            for port, beats in expected.items():
                stream = info.streams[prefix + port]
                got = dev.read_beats(prefix + port, len(beats), raw=True)
                want = [stream.codec.pack(b) for b in beats]
                bad = [k for k, (a, b) in enumerate(zip(want, got)) if a != b]
                beats_out += len(want)
                bad_beats += len(bad)
                if bad:
                    k = bad[0]
                    print(f"  {prefix + port}: first mismatching beat {k}: expected "
                          f"{stream.codec.unpack(want[k])}, got {stream.codec.unpack(got[k])}")
            status = "bit-exact" if bad_beats == 0 else "MISMATCH"
            print(f"{name}: {status}: {steps} {spec.step_unit}s, {beats_out} output beats, "
                  f"{bad_beats} mismatching, {time.monotonic() - start:.1f} s")
            mismatches += bad_beats
        return 0 if mismatches == 0 else 1


def run_main(argv=None) -> int:
    """``spikeforge run``: exit 0 when the device matches the golden model, 1 on a mismatch,
    2 on bad input or a device that does not answer."""
    parser = argparse.ArgumentParser(
        prog="spikeforge run",
        description="Run a core behind the UART bridge (a board, or the RTL in simulation) "
                    "and compare its outputs with the golden model.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port of the board (e.g. /dev/ttyUSB0)")
    where.add_argument("--sim", action="store_true",
                       help="simulate the bridged design under cocotb/Verilator instead")
    parser.add_argument("--baud", type=int, default=3_000_000, help="with --port (default 3000000)")
    parser.add_argument("--design", default="lif",
                        help="with --sim: the core, or several separated by commas (default lif)")
    parser.add_argument("--param", action="append", metavar="[CORE.]K=V",
                        help="with --sim: a core parameter (CORE. is needed with several cores)")
    parser.add_argument("--divisor", type=int, default=8,
                        help="with --sim: clock cycles per UART bit (default 8)")
    parser.add_argument("--image", help="memory image to load (and verify) first")
    parser.add_argument("--steps", type=int, help="stimulus length (default min(demo, 100))")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--identify", action="store_true", help="only identify (and load)")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        print(f"spikeforge run: error: --steps must be positive, not {args.steps}",
              file=sys.stderr)
        return 2
    from spikeforge.sim.harness import SimError
    from .image import ImageError
    from .runtime import DeviceError
    try:
        return _run(args)
    except (DeviceError, ImageError, SimError, ValueError, TypeError) as exc:
        print(f"spikeforge run: error: {exc}", file=sys.stderr)
        return 2
