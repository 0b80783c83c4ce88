"""Memory images: round trip and every rejection."""

import numpy as np
import pytest

from spikeforge.firmware.image import ImageError, MemorySpec, load_image, save_image

SPECS = {"w": MemorySpec((4, 3), -1, 1), "anchors": MemorySpec((2,), 0, 7)}


def _save(path, **over):
    mem = {"w": np.array([[1, 0, -1]] * 4), "anchors": np.array([3, 5])}
    mem.update(over)
    return save_image(path, core="demo", params={"n": 3}, memories=mem, specs=SPECS)


def test_round_trip(tmp_path):
    p = _save(tmp_path / "img.npz")
    meta, mem = load_image(p, core="demo", specs=SPECS)
    assert meta["params"] == {"n": 3}
    assert np.array_equal(mem["w"], [[1, 0, -1]] * 4) and mem["anchors"].tolist() == [3, 5]
    assert [f.name for f in tmp_path.iterdir()] == ["img.npz"]     # no temp file left


def test_save_rejects_bad_memory(tmp_path):
    with pytest.raises(ImageError, match=r"memory 'w' has shape \(3, 3\), expected \(4, 3\)$"):
        _save(tmp_path / "a.npz", w=np.zeros((3, 3), dtype=int))
    with pytest.raises(ImageError, match=r"memory 'w' holds 2, outside -1\.\.1$"):
        _save(tmp_path / "a.npz", w=np.full((4, 3), 2))
    assert not (tmp_path / "a.npz").exists()


def test_load_errors(tmp_path):
    with pytest.raises(ImageError, match=r"no such memory image$"):
        load_image(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ImageError, match=r"not a readable memory image"):
        load_image(junk)
    good = _save(tmp_path / "good.npz")
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ImageError, match=r"not a readable memory image"):
        load_image(trunc)
    with pytest.raises(ImageError, match=r"image is for core 'demo', not 'lut'$"):
        load_image(good, core="lut")
    with pytest.raises(ImageError, match=r"memory 'w' has shape \(4, 3\), expected \(8, 3\)$"):
        load_image(good, specs={"w": MemorySpec((8, 3), -1, 1), "anchors": SPECS["anchors"]})
