"""Spike rasters of traces, optionally against a second trace with mismatches marked.

Uses Matplotlib's object API with the Agg canvas, so it needs no display and leaves pyplot's
global state alone.
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .compare import compare_traces, diff_cells, format_result
from .trace import Trace, atomic_path

__all__ = ["DEFAULT_MAX_STEPS", "plot_raster"]

DEFAULT_MAX_STEPS = 200
_DPI = 100
_COLOURS = {1: "tab:blue", -1: "tab:orange"}


def _outside_events(trace, other):
    """Nonzero events of ``trace`` in cells outside ``other``'s grid, as (step, index) rows."""
    ev = trace.events
    mask = ((ev[:, 0] >= other.n_steps) | (ev[:, 1] >= other.n_index)) & (ev[:, 2] != 0)
    return ev[mask, :2]


def _mismatch_xy(a, b):
    cells = diff_cells(a, b)[:, :2]
    return np.concatenate([cells, _outside_events(a, b), _outside_events(b, a)])


def _marker_area(fig_w, fig_h, n_steps, n_index):
    """Marker area (points²) that roughly fills one raster cell, within readable bounds."""
    cell_px = min(0.8 * fig_w * _DPI / max(n_steps, 1), 0.8 * fig_h * _DPI / max(n_index, 1))
    diameter_pt = np.clip(0.8 * cell_px * 72 / _DPI, 1.5, 9.0)
    return float(diameter_pt ** 2)


def _draw_spikes(ax, trace, size, *, hollow, name):
    ev = trace.events
    values = (1,) if trace.value_kind == "binary" else (1, -1)
    for v in values:
        sel = ev[ev[:, 2] == v]
        suffix = "" if trace.value_kind == "binary" else f" {v:+d}"
        if hollow:
            ax.scatter(sel[:, 0], sel[:, 1], s=size * 2.2, facecolors="none",
                       edgecolors=_COLOURS[v], linewidths=0.9, label=f"{name}{suffix}")
        else:
            ax.scatter(sel[:, 0], sel[:, 1], s=size * (0.5 if name else 1.0), c=_COLOURS[v],
                       linewidths=0, label=f"{name}{suffix}" if name else f"{v:+d}")


def _draw_int(ax, trace, n_steps, n_index, vmin, vmax, title):
    grid = np.zeros((n_steps, n_index), dtype=np.int64)
    dense = trace.to_dense()
    grid[:dense.shape[0], :dense.shape[1]] = dense
    im = ax.imshow(grid.T, origin="lower", aspect="auto", interpolation="nearest",
                   cmap="viridis", vmin=vmin, vmax=vmax,
                   extent=(-0.5, n_steps - 0.5, -0.5, n_index - 0.5))
    ax.set_title(title, fontsize="small", loc="left")
    return im


def plot_raster(trace, path, *, vs=None, title=None, max_steps=None):
    """Write a PNG spike raster of ``trace`` (x = step, y = index) to ``path`` atomically.

    Binary spikes are dots; ternary +1 and -1 get two colours; ``value_kind == "int"`` traces
    are drawn as a colour map. With ``vs`` (e.g. the RTL trace against a golden ``trace``)
    both are drawn — ``trace`` as hollow circles, ``vs`` as dots, or as two colour maps for
    int traces — mismatching cells are marked with red crosses, and the comparison summary
    (over the whole traces) heads the title. Only the first ``max_steps`` steps
    (default :data:`DEFAULT_MAX_STEPS`) are drawn, and the title says so when that cuts the
    trace short.
    """
    for name, t in (("trace", trace), ("vs", vs)):
        if t is not None and not isinstance(t, Trace):
            raise TypeError(f"plot_raster {name!r} must be a Trace, not {type(t).__name__}")
    if max_steps is None:
        max_steps = DEFAULT_MAX_STEPS
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ValueError(f"plot_raster 'max_steps' must be a positive integer, not {max_steps!r}")

    traces = [trace] if vs is None else [trace, vs]
    total = max(t.n_steps for t in traces)
    shown = min(total, max_steps)
    n_index = max(t.n_index for t in traces)
    heads = [t.head(shown) for t in traces]

    lines = [title or f"{trace.core}: {trace.source}"
             + ("" if vs is None else f" vs {vs.source}")]
    a_name, b_name = trace.source, vs.source if vs is not None else ""
    if a_name == b_name:
        a_name, b_name = "expected", "got"
    if vs is not None:
        lines.append(format_result(compare_traces(trace, vs), a_name, b_name).splitlines()[0])
    if shown < total:
        lines.append(f"showing {trace.unit}s 0-{shown - 1} of {total}")

    is_int = any(t.value_kind == "int" for t in traces)
    fig_w = float(np.clip(4 + shown * 0.05, 7, 16))
    fig_h = float(np.clip(2 + n_index * 0.2, 3.5, 10))
    if is_int and vs is not None:
        fig_h *= 1.7
    fig = Figure(figsize=(fig_w, fig_h), dpi=_DPI, layout="constrained")
    mismatch = _mismatch_xy(*heads) if vs is not None else np.zeros((0, 2), dtype=np.int64)

    if is_int:
        values = np.concatenate([h.events[:, 2] for h in heads] + [np.zeros(1, dtype=np.int64)])
        vmin, vmax = int(values.min()), int(values.max())
        axes = fig.subplots(len(heads), 1, sharex=True, squeeze=False)[:, 0]
        for ax, h, name in zip(axes, heads, (a_name, b_name)):
            im = _draw_int(ax, h, shown, n_index, vmin, vmax, name)
            if len(mismatch):
                ax.scatter(mismatch[:, 0], mismatch[:, 1], marker="x", c="red",
                           s=_marker_area(fig_w, fig_h / len(heads), shown, n_index) * 1.5,
                           linewidths=1.5, label=f"mismatch ({len(mismatch)} shown)")
        fig.colorbar(im, ax=list(axes), label="value")
        if len(mismatch):
            fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower right",
                       fontsize="small", frameon=False)
    else:
        axes = [fig.subplots()]
        size = _marker_area(fig_w, fig_h, shown, n_index)
        if vs is None:
            _draw_spikes(axes[0], heads[0], size, hollow=False, name="")
        else:
            _draw_spikes(axes[0], heads[0], size, hollow=True, name=a_name)
            _draw_spikes(axes[0], heads[1], size, hollow=False, name=b_name)
            axes[0].scatter(mismatch[:, 0], mismatch[:, 1], marker="x", c="red", s=size * 4,
                            linewidths=1.5, label=f"mismatch ({len(mismatch)} shown)")
        if vs is not None or trace.value_kind != "binary":
            axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small",
                           frameon=False)
    for ax in axes:
        ax.set_xlim(-0.5, max(shown, 1) - 0.5)
        ax.set_ylim(-0.5, max(n_index, 1) - 0.5)
        ax.set_ylabel("index")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, linewidth=0.3, alpha=0.4)
    axes[-1].set_xlabel(trace.unit)
    fig.suptitle("\n".join(lines), fontsize="medium")
    with atomic_path(path) as (_, f):
        fig.savefig(f, format="png")
