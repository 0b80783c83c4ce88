"""Host side of the language model behind the bridge (:class:`spikeforge.rtl.lm.LMBridged`).

::

    from spikeforge.firmware.runtime import Device, SerialTransport
    from spikeforge.firmware import lm as lm_host
    with Device(SerialTransport("/dev/ttyUSB0")) as dev:
        lm_host.load_model(dev, model, noise=noise)        # every memory, through `w`
        text = lm_host.generate(dev, b"The ", 64)           # greedy; sample=True, seed=S

The same calls run against the RTL with ``SimTransport``. A ``w`` beat's row (``y``) goes
into the ``y`` staging memory with WRITE_MEM (only the values its target uses), the rest of
the beat into the ``w`` stream; the next row waits until the core has taken the beat.
"""

from __future__ import annotations

__all__ = ["generate", "load_model", "row_length", "write_beats"]


def row_length(beat, config) -> int:
    """How many values of ``beat["y"]`` the LM uses: ``n`` for the embedder, the attention and
    the FFN, 256 for the unembedder, none for the noise table or a target it drops."""
    target, kind = int(beat.get("target", 0)), int(beat.get("kind", 0))
    if target in (0, 1, 2) and kind == 0:
        return config["n"]
    if target == 3 and kind == 0:
        return 256
    return 0


def write_beats(dev, beats, *, config=None, prefix="") -> int:
    """Send ``w`` beats (the LM's layout, ``y`` included) to the design behind ``dev``, in
    order; returns the number sent. ``config`` is the model shape (default: the design's
    parameters from IDENTIFY); ``prefix`` the stream/memory name prefix of a composite."""
    info = dev.identify()
    cfg = config if config is not None else (info.params.get("lm", info.params)
                                             if prefix else info.params)
    ymem = info.memories[prefix + "y"]
    fields = [f["name"] for f in info.streams[prefix + "w"].layout["struct"]]
    staged = None
    for beat in beats:
        k = min(row_length(beat, cfg), ymem.depth)
        row = [int(v) for v in list(beat.get("y", ()))[:k]]
        row += [0] * (k - len(row))
        if k and row != staged:
            dev.write_memory(prefix + "y", 0, row)
            staged = row
        dev.send_beats(prefix + "w", [{f: beat.get(f, 0) if f not in ("a", "b")
                                       else list(beat.get(f, ())) for f in fields}])
        dev.wait_taken(prefix + "w")
    return len(beats)


def load_model(dev, model, *, noise=None, prefix="") -> int:
    """Write every memory of ``model`` (and the sampling ``noise`` table, if given) into the
    LM behind ``dev``; the model must have the design's shape. Returns the beats sent."""
    from spikeforge.golden.lm import model_writes, write_beat
    config = vars(model.config)
    beats = model_writes(model)
    if noise is not None:
        beats += [write_beat(config, target=4, addr=k, noise=int(v)) for k, v in enumerate(noise)]
    return write_beats(dev, beats, config=config, prefix=prefix)


def generate(dev, prompt: bytes, n_bytes: int, *, sample=False, seed=0, first=True,
             prefix="") -> bytes:
    """The ``n_bytes`` bytes the design generates after ``prompt`` (a new sequence unless
    ``first`` is false)."""
    from spikeforge.golden.lm import prompt_beats
    beats = prompt_beats(prompt, n_bytes, sample=sample, seed=seed)
    if not first:
        beats[0]["first"] = 0
    dev.send_beats(prefix + "i", beats)
    out = dev.read_beats(prefix + "o", n_bytes)
    return bytes(b["byte"] for b in out)
