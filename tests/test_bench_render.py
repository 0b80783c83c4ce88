"""The benchmark page renders spike-lane throughput and golden-model speed entries."""

from spikeforge.bench import GOLDEN_BENCHES, render


def test_render_spikes_per_cycle_and_golden_speed():
    results = [
        {"core": "poisson", "kind": "sim", "params": {"d_max": 64, "p": 4, "W": 100},
         "steps": 2000, "unit": "tick", "bit_exact": True, "cycles": 1000,
         "cycles_per_step": 0.5, "input_beats": 10, "golden_seconds": 0.1, "rtl_seconds": 1.0,
         "rtl_cycles_per_second": 1000, "golden_events": 5, "output_beats": 900,
         "spikes_per_cycle": 3.6},
        {"core": "poisson", "kind": "golden", "params": {"d": 384, "vectors": 500, "W": 1000,
                                                          "p": 4},
         "work": 192000000, "work_unit": "element-tick", "seconds": 1.5,
         "per_second": 128000000, "target_per_second": 1e8, "met": True, "loadavg_1min": 3.2,
         "cpus": 2, "numpy": "2.0"},
    ]
    text = render(results)
    assert "| poisson | d_max=64, p=4, W=100 | 2000 ticks | 1000 | 0.5 | 3.6 |" in text
    assert "## Golden model speed" in text
    assert ("| poisson | d=384, vectors=500, W=1000, p=4 | 1.92e+08 element-ticks | 1.5 | "
            "1.28e+08 | 1e+08 | yes | 3.2 / 2 |") in text


def test_golden_poisson_measures_wall_clock():
    (fn,) = GOLDEN_BENCHES["poisson"]
    e = fn(d=16, vectors=4, W=10, p=4, repeats=1)
    assert e["work"] == 16 * 4 * 10 and e["work_unit"] == "element-tick"
    assert e["per_second"] > 0 and e["params"] == {"d": 16, "vectors": 4, "W": 10, "p": 4}
    assert e["met"] == (e["per_second"] >= 1e8)


def test_render_build_rows_name_router_and_global_reset():
    row = {"core": "lm", "kind": "build", "params": {"ctx": 16}, "grade": 6,
           "resources": {"LUT4": 10, "FF": 20, "EBR": 3, "DSP": 0}, "fmax_mhz": {"sync": 101.5},
           "target_mhz": 100.0, "timing_met": True}
    text = render([row, {**row, "router": "router2", "global_reset": True},
                   {**row, "placer": {"timingweight": 30, "critexp": 4}}])
    assert "| lm | ctx=16 | 6 | 10 | 20 | 3 | 0 | 101.5 |" in text
    assert "| lm | ctx=16, router=router2, global_reset | 6 | 10 | 20 | 3 | 0 | 101.5 |" in text
    assert "| lm | ctx=16, placer critexp=4 timingweight=30 | 6 | 10 | 20 | 3 | 0 | 101.5 |" \
        in text
