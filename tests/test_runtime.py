# amaranth: UnusedElaboratable=no
"""Host runtime over the simulated UART: a LIF (its configuration in identify()), a ternary
linear layer (its memory image loaded at run time) and a table memory behind one bridge,
driven by the same Device code a board uses, exact against the golden models."""

import sys

import numpy as np
import pytest

from spikeforge.cores import get_core
from spikeforge.firmware import protocol as P
from spikeforge.firmware.cli import bridged_design, program_command, run_main
from spikeforge.firmware.image import MemorySpec, load_image, save_image
from spikeforge.firmware.runtime import (BridgeError, Device, DeviceError, SerialTransport,
                                         SimTransport, TransportError)
from spikeforge.golden.lif import lif
from spikeforge.golden.ternary_linear import ternary_linear
from spikeforge.sim.specs.ternary_linear import image_specs as tl_image_specs

SPEC = get_core("lif")
PARAMS = SPEC.params({"n": 16, "p": 4})
TL = {"n_in": 16, "n_out": 8, "p": 2, "k": 4, "spikes": "ternary"}
TL_PARAMS = get_core("ternary_linear").params(TL)
CORES = {"lif": PARAMS, "ternary_linear": TL_PARAMS}
# A memory of the bridge's own, shaped after an image (what `spikeforge run --image` adds).
IMAGE_SPECS = {"table": MemorySpec((8, 8), -2048, 2047)}


def _image(path):
    table = np.random.default_rng(7).integers(-2048, 2048, size=(8, 8))
    return save_image(path, core="lif+ternary_linear", params={}, memories={"table": table},
                      specs=IMAGE_SPECS)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return _image(tmp_path_factory.mktemp("image") / "table.npz")


@pytest.fixture(scope="module")
def tl_image(tmp_path_factory):
    """A ternary_linear memory image, as its golden-model side would write it."""
    w = np.random.default_rng(5).integers(-1, 2, size=(TL["n_out"], TL["n_in"]))
    path = tmp_path_factory.mktemp("image") / "ternary_linear.npz"
    return save_image(path, core="ternary_linear", params=TL, memories={"w": w},
                      specs=tl_image_specs(TL["n_out"], TL["n_in"]))


@pytest.fixture(scope="module")
def device():
    """LIF and ternary_linear side by side behind one UART bridge, plus a table memory: the
    design `spikeforge run --sim --design lif,ternary_linear --image ...` simulates."""
    top = bridged_design(CORES, image_specs=IMAGE_SPECS, divisor=8)
    with Device(SimTransport(top)) as dev:
        yield dev


def test_identify_gives_the_configuration(device):
    info = device.identify()
    assert info.protocol == P.VERSION and info.design == "lif+ternary_linear"
    assert info.params == CORES                     # the full configurations, lists and all
    s = info.streams
    assert [(n, t.dir, t.width, t.bytes) for n, t in s.items()] == [
        ("lif_i", "in", 50, 7), ("lif_o", "out", 10, 2), ("ternary_linear_i", "in", 34, 5),
        ("ternary_linear_o", "out", 15, 2), ("ternary_linear_w", "in", 20, 3)]
    assert {n: (m.width, m.depth, m.signed) for n, m in info.memories.items()} == {
        "table": (12, 64, True)}


def test_lif_streams_match_the_golden_model(device):
    """Configuration from identify(), random sequences in, spikes out: exactly the golden LIF."""
    params = {k: v for k, v in device.identify().params["lif"].items() if k != "preset"}
    n, p = params["n"], params["p"]
    rng = np.random.default_rng(11)
    steps = 48
    lo, hi = -(1 << (params["x_width"] - 1)), (1 << (params["x_width"] - 1)) - 1
    x = np.clip(rng.normal(0, 300, size=(steps, n)).round(), lo, hi).astype(np.int64)
    first = np.zeros(steps, dtype=bool)
    first[::6] = True
    first[[7, 20]] = True
    beats = [{"x": x[s, g * p:(g + 1) * p].tolist(), "first": int(first[s] and g == 0),
              "last": 0} for s in range(steps) for g in range(n // p)]
    assert device.send_beats("lif_i", beats) == len(beats)
    out = device.read_beats("lif_o", len(beats))
    q = np.array([b["q"] for b in out]).reshape(steps, n)
    expected = lif(x, first, **params)
    assert np.array_equal(q, expected)
    assert 0 < np.count_nonzero(expected) < expected.size      # the neurons did fire, not always
    assert device.read_beats("lif_o", 0) == []


def test_ternary_linear_image_and_vectors(device, tl_image):
    """The ternary layer's memory image, loaded at run time through its write stream, then
    input vectors: every output exactly the golden model's for the image's weights."""
    _, mems = load_image(tl_image, core="ternary_linear",
                         specs=tl_image_specs(TL["n_out"], TL["n_in"]))
    w = mems["w"]
    p, k = TL["p"], TL["k"]
    chunks = TL["n_in"] // k
    # One memory word per beat: w[l][m] = W[g*p + l, c*k + m] at addr g*chunks + c.
    writes = [{"addr": g * chunks + c,
               "w": w[g * p:(g + 1) * p, c * k:(c + 1) * k].tolist()}
              for g in range(TL["n_out"] // p) for c in range(chunks)]
    device.send_beats("ternary_linear_w", writes)
    rng = np.random.default_rng(12)
    s = rng.integers(-1, 2, size=(30, TL["n_in"]))
    s[4, 3] = -2                                    # the illegal code 0b10: counts 0, sets err
    vectors = [{"s": row.tolist(), "first": 0, "last": 0} for row in s]
    device.send_beats("ternary_linear_i", vectors)
    groups = TL["n_out"] // p
    out = device.read_beats("ternary_linear_o", len(vectors) * groups)
    y = np.array([b["y"] for b in out]).reshape(len(vectors), TL["n_out"])
    err = np.array([b["err"] for b in out]).reshape(len(vectors), groups)
    y_gold, err_gold = ternary_linear(s, w, spikes="ternary")
    assert np.array_equal(y, y_gold) and np.abs(y_gold).max() > 3
    assert np.array_equal(err, np.repeat(err_gold[:, None], groups, axis=1)) and err_gold.any()


def test_memory_image_round_trip(device, image):
    _, arrays = load_image(image, specs=IMAGE_SPECS)
    assert device.load_image(image, verify=True) == {"table": 64}
    assert device.read_memory("table", 10, 5) == arrays["table"].ravel()[10:15].tolist()
    assert device.level("lif_i") == device.level("lif_o") == 0
    status = device.status()
    assert status["crc"] == status["truncated"] == status["busy"] == status["rejected"] == 0


def test_errors(device):
    with pytest.raises(DeviceError, match=r"^design 'lif\+ternary_linear' has no memory 'nope'; "
                                          r"memories: table$"):
        device.read_memory("nope", 0, 1)
    with pytest.raises(DeviceError, match=r"^design 'lif\+ternary_linear' has no input stream "
                                          r"'lif_o'; input streams: lif_i, ternary_linear_i, "
                                          r"ternary_linear_w$"):
        device.send_beats("lif_o", [0])
    with pytest.raises(ValueError, match=r"^memory 'table' has 64 words; 2 from 63 do not fit$"):
        device.write_memory("table", 63, [0, 0])
    with pytest.raises(ValueError, match=r"^word 2048 does not fit 12 bits signed "
                                         r"\(-2048\.\.2047\)$"):
        device.write_memory("table", 0, [2048])
    with pytest.raises(BridgeError, match=r"^WRITE_MEM: bridge error READ_ONLY$") as exc:
        device.write_memory("descriptor", 0, [1])
    assert exc.value.code == P.Err.READ_ONLY
    with pytest.raises(DeviceError, match=r"^stream 'lif_o': 0 of 1 beats within 0\.2 s$"):
        device.read_beats("lif_o", 1, timeout=0.2)
    with pytest.raises(DeviceError, match=r"^design 'lif\+ternary_linear' has no memory "
                                          r"'weights' for the image; memories: table$"):
        device.load_image((None, {"weights": np.zeros(3, dtype=int)}))


def test_cli_run_sim(image, capsys):
    """`spikeforge run --sim`: the fixture's design (a cached build), the image, and each
    core's random stimulus (the ternary layer's includes run-time weight writes between two
    phases of vectors) against its golden model."""
    tl = [f"--param=ternary_linear.{k}={v}" for k, v in TL.items()]
    rc = run_main(["--sim", "--design", "lif,ternary_linear", "--param", "lif.n=16",
                   "--param", "lif.p=4", *tl, "--image", str(image), "--steps", "24",
                   "--seed", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "wrote and verified table (64 words)" in out
    assert "lif: bit-exact: 24 steps, 96 output beats, 0 mismatching" in out
    assert "ternary_linear: bit-exact: 24 vectors, 96 output beats, 0 mismatching" in out


def test_cli_run_bad_input(capsys):
    assert run_main(["--sim", "--steps", "0"]) == 2
    assert "--steps must be positive, not 0" in capsys.readouterr().err
    assert run_main(["--sim", "--param", "p=3"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge run: error: LIF parameter 'p' must divide n=16, not 3")
    assert run_main(["--sim", "--design", "lif,ternary_linear", "--param", "p=3"]) == 2
    assert capsys.readouterr().err == ("spikeforge run: error: with several designs, --param "
                                       "takes CORE.K=V, not 'p'\n")
    assert run_main(["--sim", "--param", "tl.p=3"]) == 2
    assert capsys.readouterr().err == ("spikeforge run: error: --param tl.p: 'tl' is not one "
                                       "of the designs lif\n")
    with pytest.raises(SystemExit):
        run_main([])                                # --port or --sim is required


def test_serial_transport_without_pyserial(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(TransportError, match=r"^SerialTransport needs pyserial, which is not "
                                             r"installed \(pip install pyserial\)$"):
        SerialTransport("/dev/ttyUSB0")


class _Silent:
    default_timeout = 0.05

    def __init__(self):
        self.sent = []

    def write(self, data):
        self.sent.append(bytes(data))

    def read(self, max_bytes, timeout):
        return b""

    def close(self):
        pass


def test_device_retries_only_what_may_be_repeated():
    link = _Silent()
    dev = Device(link, retries=2)
    with pytest.raises(DeviceError, match=r"^STATUS: no response within 0\.05 s$"):
        dev.status()
    assert len(link.sent) == 3                      # idempotent: sent, then resent twice
    link.sent.clear()
    with pytest.raises(DeviceError, match=r"^READ_BEATS: no response within 0\.05 s$"):
        dev.request(P.Cmd.READ_BEATS, b"\x01\x01")
    assert len(link.sent) == 1                      # beats are never re-requested blindly


@pytest.mark.parametrize("board, flash, cable, expected", [
    ("ulx3s-85f", False, None, ["-b", "ulx3s", "top.bit"]),
    ("ulx3s-12f", True, None, ["-b", "ulx3s", "-f", "top.bit"]),
    ("orangecrab-r0.2-85f", True, None, ["-b", "orangeCrab", "top.bit"]),
    ("ecpix5-85f", False, None, ["-b", "ecpix5", "top.bit"]),
    ("ecp5-5g-evn", False, None, ["-b", "ecp5_evn", "top.bit"]),
    ("versa-ecp5-5g", False, None, ["-c", "ft2232", "top.bit"]),
    ("icesugar-pro", False, None, ["-c", "cmsisdap", "--vid", "0x1d50", "--pid", "0x602b",
                                   "top.bit"]),
    ("colorlight-5a-75b", False, "ft232", ["-b", "colorlight", "-c", "ft232", "top.bit"]),
    ("butterstick", True, "ft2232", ["-c", "ft2232", "-f", "top.bit"]),
])
def test_program_command(board, flash, cable, expected):
    assert program_command(board, "top.bit", flash=flash, cable=cable) == \
        ["openFPGALoader", *expected]


def test_program_command_wrong():
    with pytest.raises(ValueError, match=r"^unknown board 'nope'; known boards: ulx3s-12f, "):
        program_command("nope", "top.bit")
    with pytest.raises(ValueError, match=r"^board 'logicbone-85f' has no on-board programmer "
                                         r"openFPGALoader knows; pass cable="):
        program_command("logicbone-85f", "top.bit")
    with pytest.raises(ValueError, match=r"^cable must be an openFPGALoader cable name, not ''$"):
        program_command("ulx3s-85f", "top.bit", cable="")
