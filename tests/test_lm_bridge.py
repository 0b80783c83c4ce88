# amaranth: UnusedElaboratable=no
"""The language model behind the host bridge: a design built with one random model is given
another through the host runtime (rows staged in the ``y`` memory, beats on ``w``), then
generates text over the simulated transport, byte for byte the golden model's."""

from types import SimpleNamespace

import numpy as np
import pytest

from spikeforge.cores import get_core
from spikeforge.firmware import lm as lm_host
from spikeforge.firmware.cli import make_bridge
from spikeforge.firmware.runtime import Device, SimTransport
from spikeforge.golden.lm import LMGolden, generate, noise_table, random_model
from spikeforge.rtl.lm import LM, LMBridged

TINY = dict(ctx=6, n=6, att_n_t=2, att_n_c=2, att_p=1, ffn_n_t=2, ffn_n_c=2, out_n_t=2,
            out_n_c=2, w_width=5)


def test_bridged_view_refuses_other_cores():
    with pytest.raises(TypeError, match="LMBridged needs an LM"):
        LMBridged(object())


class _StagedDevice:
    """What LMBridged does with the host's requests, on the golden model: WRITE_MEM fills the
    staging row, a ``w`` beat writes with the staged row."""

    def __init__(self, lm, golden):
        bridged = LMBridged(lm)
        layout = [{"name": name} for name, _ in bridged.w.payload.shape()]
        self.info = SimpleNamespace(
            params=dict(lm.config), memories={"y": SimpleNamespace(depth=256)},
            streams={"w": SimpleNamespace(layout={"struct": layout})})
        self.golden, self.y, self.waits = golden, np.zeros(256, np.int64), 0

    def identify(self):
        return self.info

    def write_memory(self, name, addr, words):
        assert name == "y"
        self.y[addr:addr + len(words)] = words

    def send_beats(self, name, beats):
        assert name == "w" and self.waits == 0
        for beat in beats:
            assert "y" not in beat
            self.golden.write({**beat, "y": self.y.tolist()})
        self.waits = 1

    def wait_taken(self, name):
        self.waits = 0


def test_staged_rows_load_the_whole_model():
    """Rows staged with only the values each target uses, one beat at a time, leave exactly
    the memories a direct load leaves."""
    spec = get_core("lm")
    params = spec.params({"model": "random", "model_seed": 1, **TINY})
    other = random_model(TINY, seed=2)
    noise = noise_table(other.out_scale, 0.5)
    dev = _StagedDevice(spec.build(**params), LMGolden(random_model(TINY, seed=1)))
    lm_host.load_model(dev, other, noise=noise)
    want = LMGolden(other, noise=noise)
    for key in ("embed", "att_anchors", "att_tables", "att_pe", "ffn_anchors", "ffn_tables",
                "out_anchors", "out_tables", "noise"):
        assert np.array_equal(getattr(dev.golden, key), getattr(want, key)), key


@pytest.mark.slow
def test_host_loads_a_model_and_generates():
    spec = get_core("lm")
    params = spec.params({"model": "random", "model_seed": 1, **TINY})
    bridge = make_bridge({"lm": params})
    assert isinstance(bridge.core, LMBridged)
    other = random_model(TINY, seed=2)
    noise = noise_table(other.out_scale, 1.0)
    with Device(SimTransport(bridge)) as dev:
        info = dev.identify()
        assert info.design == "lm" and info.memories["y"].depth == 256
        # The staging row reads back what was written (from its block-RAM copy), signed.
        row = [(-1) ** k * (k % 16) for k in range(256)]
        dev.write_memory("y", 0, row)
        dev.write_memory("y", 7, [-16, 15])
        assert dev.read_memory("y", 0, 256) == row[:7] + [-16, 15] + row[9:]
        lm_host.load_model(dev, other, noise=noise)
        got = lm_host.generate(dev, b"hello", 24)
        assert got == generate(other, b"hello", 24)
        got = lm_host.generate(dev, b"abc", 20, sample=True, seed=77)
        assert got == generate(other, b"abc", 20, sample=True, seed=77, noise=noise)
        # The design's own model is gone: the text differs from what it would have said.
        built = random_model(TINY, seed=1)
        assert generate(built, b"hello", 24) != generate(other, b"hello", 24)

