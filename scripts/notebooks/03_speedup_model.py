CELLS = [
    """#md
# 03 · Speed-up model

Turns ratio + throughput + link bandwidth into the speed-up of the embedding all-to-all
(`dlrmcomp.bench.speedup`, the artifact's `S = 1 / (1/CR + B (1/Tc + 1/Td))`: compress, send,
decompress, no overlap).

1. **GPU, measured** (the figure that matters): the codecs' ratio and throughputs measured on an
   H200 by `benchmarks/gpu_codecs.py` (the committed CSV, `GPU_CSV`), one line per codec, real
   links marked, and on top the all-to-alls measured by `benchmarks/alltoall.py` (`ALLTOALL`):
   filled markers measured, hollow ones the model fed with the same run's throughputs.
2. **CPU** (a separate panel): the same model with the throughputs of this machine's CPU codecs
   (a quick benchmark of the generated payload, or a `dlrmcomp bench` CSV, `RESULTS_CSV`), the
   per-table best codec (the artifact's hybrid) and a pipelined variant.
3. **End to end** (Amdahl): the iteration speed-up for a share of the iteration in the all-to-all.
   In JupyterLab, sliders move bandwidth, share and pipelining.
""",
    """import dlrmcomp.notebook
from dlrmcomp.bench import benchmark, measured
from dlrmcomp.bench import speedup as sp
from dlrmcomp.plots import bench as bench_plots
%matplotlib inline
""",
    """# parameters
PROFILE = "smoke"   # smoke | demo | full: size of the CPU payload benchmarked here
# OUT_DIR: where results.json and figures go (None: a new runs/ folder)
OUT_DIR = None
# GPU_CSV: a benchmarks/gpu_codecs.py CSV (None: the committed H200 run, benchmarks/data/gpu_codecs_h200.csv)
GPU_CSV = None
GPU_PAYLOAD = "design"  # which payload's rows: design | other | no-repeat
# GPU_CODECS: keys of dlrmcomp.bench.measured.KEY_CODECS, one line each
GPU_CODECS = ["ours-wire", "ours-dedup", "nvcomp-ans", "nvcomp-zstd", "nvcomp-bitcomp", "ours-frames-host"]
# ALLTOALL: benchmarks/alltoall.py JSON files drawn on top (None: the committed H200 gloo and NCCL runs)
ALLTOALL = None
ANNOTATE = ["gloo", "gpu:quant+ans", 128.0]  # the all-to-all row labelled: backend, codec, MB per rank
# RESULTS_CSV: CPU rates from a dlrmcomp bench CSV (None: benchmark the generated payload here)
RESULTS_CSV = None
# CODECS: the CPU codecs (benchmarked here, or picked from RESULTS_CSV; None: all of the CSV's)
CODECS = ["quant+ans", "quant+huffman", "quant+zstd", "quant+lz4", "quant+dedup+ans"]
EB = 0.03           # relative bound of the CPU rates (benchmarked, or picked where the CSV swept several)
BANDWIDTH = 3.125   # GB/s (25 GbE)
SHARE = 0.3         # share of the iteration spent in the all-to-all
PIPELINED = False
""",
    """#md
## 1 · GPU: measured throughputs and measured all-to-alls
""",
    """gpu_csv = measured.read_gpu_codecs(GPU_CSV or measured.GPU_CSV)
gpu = measured.key_rates(gpu_csv, GPU_PAYLOAD, GPU_CODECS)
a2a = measured.read_alltoall(*(ALLTOALL or measured.ALLTOALL_JSON))
gpu[["key", "name", "cr", "tc", "td"]].round(2)
""",
    """fig_gpu = bench_plots.speedup_measured(gpu, a2a, title=measured.figure_title(gpu_csv, GPU_PAYLOAD),
                                       annotate=ANNOTATE)
""",
    """a2a[["backend", "world", "size_mb", "codec", "cr", "bandwidth_gbs", "measured_speedup", "model_speedup",
     "model_error"]].round(3)
""",
    """#md
## 2 · CPU: this machine's codecs (a separate panel)
""",
    """if RESULTS_CSV:
    rates = sp.select(sp.load_results(RESULTS_CSV), CODECS, EB)
else:
    items = benchmark.payload_items(benchmark.profile_payload(PROFILE), [EB])
    rates = sp.from_bench(benchmark.bench(items, CODECS, repeat=benchmark.PROFILES[PROFILE]["repeat"]))
per_codec = sp.codec_rates(rates)
per_codec.round(3)
""",
    """fig_cpu = bench_plots.speedup_vs_bandwidth(per_codec, pipelined=None, marker=BANDWIDTH,
                                           title=f"CPU codecs on this machine ({PROFILE} payload, eb {EB:g})")
""",
    """rated = sp.per_table(rates, BANDWIDTH, PIPELINED)
best = sp.hybrid(rated)
speedups = {c: sp.overall(g.speedup) for c, g in rated.groupby("codec")} | {"hybrid": sp.overall(best.speedup)}
{name: (round(s, 4), round(sp.end_to_end(s, SHARE), 4)) for name, s in speedups.items()}
""",
    """#md
## 3 · End to end, GPU codecs (sliders in JupyterLab)
""",
    """fig_e2e = bench_plots.speedup_explorer(gpu, BANDWIDTH, SHARE, PIPELINED)
""",
    """bw = bench_plots.BANDWIDTHS
gpu_at = {r.key: sp.speedup(r.cr, r.tc, r.td, BANDWIDTH, PIPELINED) for r in gpu.itertuples()}
out = dlrmcomp.notebook.record({
    "profile": PROFILE,
    "bandwidth": BANDWIDTH, "share": SHARE, "pipelined": PIPELINED,
    "gpu": {**measured.provenance(gpu_csv), "source": str(GPU_CSV or measured.GPU_CSV), "payload": GPU_PAYLOAD,
            "codecs": GPU_CODECS, "rates": gpu.drop(columns=["color", "linestyle"]).to_dict(orient="records"),
            "at_links": measured.at_links(gpu, by="key"), "break_even": measured.break_evens(gpu, by="key"),
            "speedup": gpu_at, "end_to_end": {k: sp.end_to_end(s, SHARE) for k, s in gpu_at.items()}},
    "alltoall": a2a.to_dict(orient="records"),
    "rates": per_codec.to_dict(orient="records"),
    "speedup": speedups,
    "end_to_end": {name: sp.end_to_end(s, SHARE) for name, s in speedups.items()},
    "hybrid_choice": dict(zip(best.table, best.codec)),
    "break_even": {r.codec: {"sequential": sp.break_even(r.cr, r.tc, r.td),
                             "pipelined": sp.break_even(r.cr, r.tc, r.td, pipelined=True)} for r in per_codec.itertuples()},
    "pipelined_never_slower": bool(all((sp.speedup(r.cr, r.tc, r.td, bw, True) >= sp.speedup(r.cr, r.tc, r.td, bw)).all()
                                       for r in per_codec.itertuples())),
}, out_dir=OUT_DIR, figures={"speedup_gpu": fig_gpu, "speedup_cpu": fig_cpu, "end_to_end": fig_e2e})
print("recorded in", out)
""",
]
