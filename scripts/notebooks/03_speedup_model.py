CELLS = [
    """#md
# 03 · Speed-up model

Turns ratio + throughput + network bandwidth into the speed-up of the all-to-all
(`dlrmcomp.bench.speedup`): the artifact's sequential formula, a pipelined variant, the per-table
best codec (the artifact's hybrid) and the end-to-end iteration speed-up (Amdahl). Rates come from
a `dlrmcomp bench` CSV (`RESULTS_CSV`) or from a quick benchmark of the generated payload.
In JupyterLab, sliders move bandwidth and all-to-all share.
""",
    """import dlrmcomp.notebook
from dlrmcomp.bench import benchmark
from dlrmcomp.bench import speedup as sp
from dlrmcomp.plots import bench as bench_plots
%matplotlib inline
""",
    """# parameters
PROFILE = "smoke"   # smoke | demo | full: payload size when RESULTS_CSV is None
# OUT_DIR: where results.json and figures go (None: a new runs/ folder)
OUT_DIR = None
# RESULTS_CSV: a dlrmcomp bench CSV (None: benchmark the generated payload)
RESULTS_CSV = None
CODECS = ["quant+ans", "quant+huffman", "quant+zstd", "quant+lz4", "quant+dedup+ans"]
EB = 0.03           # relative bound of the quick benchmark
BANDWIDTH = 5.0     # GB/s
SHARE = 0.3         # share of the iteration spent in the all-to-all
PIPELINED = False
""",
    """if RESULTS_CSV:
    rates = sp.load_results(RESULTS_CSV)
else:
    items = benchmark.payload_items(benchmark.profile_payload(PROFILE), [EB])
    rates = sp.from_bench(benchmark.bench(items, CODECS, repeat=benchmark.PROFILES[PROFILE]["repeat"]))
per_codec = sp.codec_rates(rates)
per_codec.round(3)
""",
    """fig_seq = bench_plots.speedup_vs_bandwidth(per_codec, pipelined=False, marker=BANDWIDTH)
fig_pipe = bench_plots.speedup_vs_bandwidth(per_codec, pipelined=True, marker=BANDWIDTH)
""",
    """rated = sp.per_table(rates, BANDWIDTH, PIPELINED)
best = sp.hybrid(rated)
speedups = {c: sp.overall(g.speedup) for c, g in rated.groupby("codec")} | {"hybrid": sp.overall(best.speedup)}
{name: (round(s, 4), round(sp.end_to_end(s, SHARE), 4)) for name, s in speedups.items()}
""",
    """fig_e2e = bench_plots.speedup_explorer(per_codec, BANDWIDTH, SHARE, PIPELINED)
""",
    """bw = bench_plots.BANDWIDTHS
out = dlrmcomp.notebook.record({
    "profile": PROFILE,
    "bandwidth": BANDWIDTH, "share": SHARE, "pipelined": PIPELINED,
    "rates": per_codec.to_dict(orient="records"),
    "speedup": speedups,
    "end_to_end": {name: sp.end_to_end(s, SHARE) for name, s in speedups.items()},
    "hybrid_choice": dict(zip(best.table, best.codec)),
    "break_even": {r.codec: {"sequential": sp.break_even(r.cr, r.tc, r.td),
                             "pipelined": sp.break_even(r.cr, r.tc, r.td, pipelined=True)} for r in per_codec.itertuples()},
    "pipelined_never_slower": bool(all((sp.speedup(r.cr, r.tc, r.td, bw, True) >= sp.speedup(r.cr, r.tc, r.td, bw)).all()
                                       for r in per_codec.itertuples())),
}, out_dir=OUT_DIR, figures={"speedup_sequential": fig_seq, "speedup_pipelined": fig_pipe, "end_to_end": fig_e2e})
print("recorded in", out)
""",
]
