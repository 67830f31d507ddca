CELLS = [
    """#md
# 02 · Compression benchmark

Every codec on every (table, snapshot) of the embedding payload: the EMB dumps of notebook 01
when `DUMPS_DIR` is given, else the DESIGN.md payload generated at the profile's size. Ratio vs
fp32 and vs the quantized codes, throughput, harmonic means per table (as the artifact's parsers),
and the order-0 entropy of the codes (`entropy0`) as the bar an ideal symbol coder reaches.
""",
    """import dlrmcomp.notebook
from dlrmcomp.bench import benchmark
from dlrmcomp.plots import bench as bench_plots
%matplotlib inline
""",
    """# parameters
PROFILE = "smoke"   # smoke | demo | full: payload size and repeats (dlrmcomp.bench.benchmark.PROFILES)
# OUT_DIR: where results.json, results.csv and figures go (None: a new runs/ folder)
OUT_DIR = None
# DUMPS_DIR: EMB dumps of notebook 01 (None: generate the payload)
DUMPS_DIR = None
BOUNDS = [0.01, 0.03, 0.1]   # relative error bounds
# CODECS: codec names; None = every codec available here
CODECS = ["quant+ans", "quant+huffman", "quant+zstd", "quant+lz4", "quant+dedup+ans", "quant+dedup+zstd", "sz3", "zstd", "lz4"]
REPEAT = None   # timed runs per measurement (None: the profile's)
SEED = 0
""",
    """names = CODECS or dlrmcomp.codecs.available()
repeat = REPEAT or benchmark.PROFILES[PROFILE]["repeat"]
if DUMPS_DIR:
    items = benchmark.dump_items(DUMPS_DIR, benchmark.Bounds(",".join(map(str, BOUNDS))))
else:
    items = benchmark.payload_items(benchmark.profile_payload(PROFILE, SEED), BOUNDS)
results = benchmark.bench(items, names, repeat=repeat)
per_table = benchmark.table_summary(results, ("codec", "eb", "table"))
summary = benchmark.table_summary(per_table, ("codec", "eb"))
summary.round(3)
""",
    """fig_ratio = bench_plots.ratio_vs_bound(results)
""",
    """eb0 = 0.03 if 0.03 in BOUNDS else BOUNDS[0]
at_eb = results[results.eb.isna() | (results.eb == eb0)]
fig_tp = bench_plots.throughput_bars(benchmark.codec_summary(at_eb))
""",
    """fig_heat = bench_plots.ratio_heatmap(results[results.eb == eb0], "quant+dedup+ans" if "quant+dedup+ans" in names else names[0])
""",
    """bytes_of = results[results.eb.notna()].set_index(["table", "snapshot", "eb", "codec"]).frame_bytes.unstack()
ratio_at = summary[summary.eb == eb0].set_index("codec").ratio
checks = {
    "ans_over_entropy_max": float((bytes_of["quant+ans"] / bytes_of["entropy0"]).max()) if "quant+ans" in names else None,
    "dedup_over_zstd": float(ratio_at["quant+dedup+ans"] / ratio_at["quant+zstd"]) if {"quant+dedup+ans", "quant+zstd"} <= set(names) else None,
}
out_dir = OUT_DIR or dlrmcomp.notebook.new_run_dir(label="-interactive")
csv_path = benchmark.write_results(results, f"{out_dir}/results.csv", f"notebook 02 PROFILE={PROFILE} DUMPS_DIR={DUMPS_DIR}")
checks
""",
    """out = dlrmcomp.notebook.record({
    "profile": PROFILE,
    "source": DUMPS_DIR or "payload",
    "violations": int(results.violations.sum()),
    "checks": checks,
    "summary": summary.to_dict(orient="records"),
    "per_table": per_table.to_dict(orient="records"),
    "csv": str(csv_path),
}, out_dir=out_dir, figures={"ratio_vs_bound": fig_ratio, "throughput": fig_tp, "ratio_heatmap": fig_heat},
   exports={"RESULTS_CSV": str(csv_path)})
print("recorded in", out)
""",
]
