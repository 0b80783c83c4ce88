"""A live bridge under cocotb/Verilator, its bytes exchanged with a host process over a socket.

:func:`start` builds the top (cached like :mod:`spikeforge.sim.harness`), listens on a UNIX
socket and launches the simulation in a subprocess (``python -m spikeforge.sim.uart_bench``,
which runs :func:`serve` in the simulator through ``cocotb_tools.runner``). The socket carries
the raw bytes of the host protocol in both directions; the host side is
:class:`spikeforge.firmware.runtime.SimTransport`, so the host code is the same as for a board.

Two tops:

* ``"uart"``: a :class:`~spikeforge.rtl.bridge.UARTBridge`; the bench bit-bangs every host byte
  onto its ``rx`` pin (8N1, ``divisor`` clock periods per bit) and decodes its ``tx`` pin.
* ``"bytes"``: a :class:`~spikeforge.rtl.bridge.Bridge` in
  :class:`~spikeforge.sim.harness.HarnessTop`; the bench writes host bytes into ``rx`` one per
  cycle and reads ``tx`` every cycle (no PHY: for long protocol tests).

The simulation runs while the host keeps the socket open. When the design has been quiet for a
while and the host has nothing to send, the bench blocks on the socket (the simulator waits
with it), so an idle host costs no CPU. Closing the socket ends the simulation.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["BenchProcess", "start"]

TOPLEVEL = "spikeforge_bridge_tb"
# Cycles without bridge output after which an idle bench waits for the host instead of running.
_QUIET_CYCLES = 20000
# How long one wait for the host may block the simulator (seconds).
_HOST_WAIT = 0.05


class BenchProcess:
    """A running bench: ``sock`` is connected to it; :meth:`close` ends it and cleans up."""

    def __init__(self, proc, sock, work, log):
        self.proc, self.sock, self.work, self.log = proc, sock, work, log

    def log_tail(self, chars=3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def close(self, timeout=30.0) -> int | None:
        """Close the socket, wait for the simulator to finish (kill it if it does not)."""
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)     # our own child's process group
            rc = self.proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)
        return rc


def _verilog(top, mode):
    from amaranth.back import verilog
    if mode == "bytes":
        from .harness import HarnessTop
        top = HarnessTop(top)
    return verilog.convert(top, name=TOPLEVEL, emit_src=False)


def _build(text, tag, *, waves, progress):
    from cocotb_tools.runner import get_runner
    from .harness import VERILATOR_ARGS, SimError, build_key, cache_dir, verilator_env
    args = list(VERILATOR_ARGS) + (["--trace-fst", "--trace-structs"] if waves else [])
    key = build_key(text, args, waves)
    build_dir = cache_dir() / "verilator" / f"{tag}-{key}"
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (build_dir / ".built").exists():
            if build_dir.exists():
                shutil.rmtree(build_dir)
            build_dir.mkdir(parents=True)
            (build_dir / f"{TOPLEVEL}.v").write_text(text)
            progress(f"verilator: building {build_dir.name} (once per design, cached)")
            env_before = dict(os.environ)
            os.environ.update(verilator_env())
            try:
                get_runner("verilator").build(
                    sources=[build_dir / f"{TOPLEVEL}.v"], hdl_toplevel=TOPLEVEL,
                    build_dir=build_dir, build_args=args, waves=waves,
                    log_file=build_dir / "build.log")
            except (SystemExit, Exception) as exc:
                raise SimError(f"Verilator build failed ({exc}); see "
                               f"{build_dir / 'build.log'}") from None
            finally:
                os.environ.clear()
                os.environ.update(env_before)
            (build_dir / ".built").write_text("ok\n")
    return build_dir


def start(top, *, clock_ns=10, waves=False, connect_timeout=120.0,
          progress=lambda msg: None) -> BenchProcess:
    """Build ``top`` (a ``UARTBridge`` or a ``Bridge``) and start simulating it.

    Returns once the bench has connected. Raises
    :class:`~spikeforge.sim.harness.SimError` if the build fails or the simulator does not
    connect within ``connect_timeout`` seconds.
    """
    from spikeforge.rtl.bridge import Bridge, UARTBridge
    from .harness import SimError, verilator_env
    if isinstance(top, UARTBridge):
        mode, divisor = "uart", top.divisor
    elif isinstance(top, Bridge):
        mode, divisor = "bytes", 0
    else:
        raise TypeError(f"bench top must be a UARTBridge or a Bridge, not {top!r}")
    if isinstance(clock_ns, bool) or not isinstance(clock_ns, int) or clock_ns < 2:
        raise ValueError(f"clock_ns must be an integer >= 2, not {clock_ns!r}")
    build_dir = _build(_verilog(top, mode), f"bridge-{mode}", waves=waves, progress=progress)

    work = Path(tempfile.mkdtemp(prefix="link-", dir=build_dir))
    # UNIX socket paths are limited to ~100 bytes: keep the socket in the system temp dir.
    sock_dir = Path(tempfile.mkdtemp(prefix="sfb-"))
    sock_path = sock_dir / "s"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    log = work / "sim.log"
    try:
        listener.bind(str(sock_path))
        listener.listen(1)
        job = {"mode": mode, "divisor": divisor, "clock_ns": clock_ns, "socket": str(sock_path),
               "build_dir": str(build_dir), "work": str(work), "waves": waves}
        (work / "job.json").write_text(json.dumps(job))
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "spikeforge.sim.uart_bench",
                                     str(work / "job.json")],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=verilator_env(), cwd=work, start_new_session=True)
        deadline = time.monotonic() + connect_timeout
        while True:
            ready, _, _ = select.select([listener], [], [], 0.2)
            if ready:
                sock, _ = listener.accept()
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    os.killpg(proc.pid, 9)
                    proc.wait()
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                shutil.rmtree(work, ignore_errors=True)
                raise SimError(f"the bridge simulation did not start:\n{tail}")
    finally:
        listener.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
    return BenchProcess(proc, sock, work, log)


def _run_job(job_path):
    """Child process: run the cocotb test :func:`serve` on the built model."""
    from cocotb_tools.runner import get_results, get_runner
    job = json.loads(Path(job_path).read_text())
    work = Path(job["work"])
    xml = get_runner("verilator").test(
        test_module="spikeforge.sim.uart_bench", hdl_toplevel=TOPLEVEL,
        hdl_toplevel_lang="verilog", build_dir=job["build_dir"], test_dir=work,
        waves=job["waves"], extra_env={"SPIKEFORGE_BRIDGE_JOB": str(job_path)},
        results_xml=str(work / "results.xml"))
    _, failed = get_results(xml)
    return 1 if failed else 0


# ---------------------------------------------------------------- inside the simulator

class _Host:
    """The socket to the host, polled without blocking unless asked to."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.inbox = bytearray()
        self.closed = False

    def poll(self, timeout=0.0):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if ready:
            data = self.sock.recv(65536)
            if data:
                self.inbox += data
            else:
                self.closed = True

    def send(self, data):
        try:
            self.sock.sendall(bytes(data))
        except OSError:
            self.closed = True


def _bench_body():
    # cocotb is imported only inside the simulator (and by the test runner).
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, RisingEdge, Timer

    async def reset(dut, clock_ns):
        Clock(dut.clk, clock_ns, unit="ns").start()
        dut.rst.value = 1
        for _ in range(4):
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    async def serve_uart(dut, host, job):
        bit_ns = job["divisor"] * job["clock_ns"]
        chunk_ns = 64 * job["clock_ns"]
        state = {"busy": False, "quiet": 0}

        async def monitor():
            while True:
                await FallingEdge(dut.tx)
                state["busy"] = True
                await Timer(bit_ns // 2, unit="ns")     # the middle of the start bit
                if int(dut.tx.value) != 0:
                    state["busy"] = False
                    continue
                byte = 0
                for i in range(8):
                    await Timer(bit_ns, unit="ns")
                    byte |= int(dut.tx.value) << i
                await Timer(bit_ns, unit="ns")
                if int(dut.tx.value) == 1:
                    host.send((byte,))
                else:
                    dut._log.warning("tx framing error (stop bit 0)")
                state["busy"], state["quiet"] = False, 0

        dut.rx.value = 1
        await reset(dut, job["clock_ns"])
        cocotb.start_soon(monitor())
        while not host.closed:
            host.poll()
            if host.inbox:
                data = bytes(host.inbox)
                host.inbox.clear()
                for byte in data:
                    for level in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                        dut.rx.value = level
                        await Timer(bit_ns, unit="ns")
                state["quiet"] = 0
                continue
            await Timer(chunk_ns, unit="ns")
            state["quiet"] += 64
            if state["quiet"] > _QUIET_CYCLES and not state["busy"]:
                host.poll(_HOST_WAIT)

    async def serve_bytes(dut, host, job):
        rx_valid, rx_payload = dut.rx_valid, dut.rx_payload
        tx_fire, tx_data = dut.tx_fire, dut.tx_data
        rx_valid.value = 0
        rx_payload.value = 0
        dut.tx_ready.value = 1
        await reset(dut, job["clock_ns"])
        edge = FallingEdge(dut.clk)
        quiet, driving = 0, False
        out = bytearray()
        inbox = host.inbox
        while not host.closed:
            await edge
            if tx_fire.value:
                out.append(int(tx_data.value))
                quiet = 0
            else:
                quiet += 1
                if out:
                    host.send(out)
                    out.clear()
                if not inbox and quiet > 1:
                    # Poll the host only while the bridge is not talking; block when idle.
                    host.poll(_HOST_WAIT if quiet > _QUIET_CYCLES else 0.0)
            if inbox:
                rx_payload.value = inbox.pop(0)     # the bridge takes a byte every cycle
                if not driving:
                    rx_valid.value = 1
                    driving = True
                quiet = 0
            elif driving:
                rx_valid.value = 0
                driving = False

    @cocotb.test()
    async def serve(dut):
        """Serve the host over the socket until it closes."""
        job = json.loads(Path(os.environ["SPIKEFORGE_BRIDGE_JOB"]).read_text())
        host = _Host(job["socket"])
        if job["mode"] == "uart":
            await serve_uart(dut, host, job)
        else:
            await serve_bytes(dut, host, job)

    return serve


if os.environ.get("SPIKEFORGE_BRIDGE_JOB") and __name__ != "__main__":
    serve = _bench_body()


if __name__ == "__main__":
    sys.exit(_run_job(sys.argv[1]))
