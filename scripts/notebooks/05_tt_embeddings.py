CELLS = [
    """#md
# 05 · TT embedding tables

Seed 003 (`dlrmcomp.models.tt`): an N x D table stored as three tensor-train cores
`r_{k-1} x p_k x q_k x r_k` (TT-Rec), looked up the naive way (one chain of two GEMMs per
lookup) or EcoRec's way (unique indices, `G1[i1] G2[i2]` once per distinct prefix, micro-batches
that bound the intermediates). Plain PyTorch: the same code on the CPU and the GPU.

1. **Exactness**: both lookups against an `EmbeddingBag` on the reconstructed table (float64).
2. **Speed**: forward + backward of naive TT, prefix reuse and a dense `nn.EmbeddingBag` on Zipf
   lookups, rows hashed over the table and in popularity order.
3. **Memory** over the batch, with and without micro-batches (CPU: counted; CUDA: measured).
4. **Quality**: AUC of TT tables at several ranks against dense tables, and the compression.
5. **Table-wise pipeline** (`PIPELINE`): 2 gloo ranks, one all-to-all vs groups with and without overlap.
""",
    """import dlrmcomp.notebook
from dlrmcomp.bench import tt as tt_bench
from dlrmcomp.plots import tt as tt_plots
%matplotlib inline
""",
    """# parameters
PROFILE = "smoke"   # smoke | demo | full: sweep and run sizes (dlrmcomp.bench.tt.PROFILES)
# OUT_DIR: where results.json and figures go (None: a new runs/ folder)
OUT_DIR = None
DEVICE = "cpu"      # cpu | cuda: where the speed and memory sweeps run
CRITEO = "sample"   # "sample": the Criteo sample in ../shared/data/real (skipped when absent); "TRAIN,TEST"; None
PIPELINE = False    # True: the 2-rank pipeline comparison (about a minute at smoke size)
""",
    """size = tt_bench.PROFILES[PROFILE]
exact = tt_bench.exactness()
exact
""",
    """#md
## Speed (forward + backward, one table)
""",
    """speed = tt_bench.lookup_speed(size["speed"], DEVICE, repeat=size["repeat"])
speed.round(3)
""",
    """fig_speed = tt_plots.speed(speed)
""",
    """#md
## Peak memory over the batch
""",
    """memory = tt_bench.memory_peak(size["memory_rows"], 32, (32, 32), size["memory_batches"], DEVICE)
memory.round(4)
""",
    """fig_memory = tt_plots.memory(memory)
""",
    """#md
## Quality: AUC against dense tables
""",
    """compression = tt_bench.compression_table(size["quality_ranks"])
quality = tt_bench.quality_table(size["quality_ranks"], CRITEO or None, **size["quality"])
quality.round(4)
""",
    """fig_quality = tt_plots.quality(quality)
""",
    """pipeline = tt_bench.pipeline_overlap(**size["pipeline"], scale=1e-2, tt_ranks="32,32") if PIPELINE else None
pipeline
""",
    """out = dlrmcomp.notebook.record({
    "profile": PROFILE, "device": DEVICE,
    "exactness": exact,
    "speed": speed.to_dict(orient="records"),
    "speedup_at_16k": tt_bench.speed_target(speed),
    "memory": memory.to_dict(orient="records"),
    "compression": compression.to_dict(orient="records"),
    "quality": quality.to_dict(orient="records"),
    "pipeline": None if pipeline is None else pipeline.to_dict(orient="records"),
}, out_dir=OUT_DIR, figures={"speed": fig_speed, "memory": fig_memory, "quality": fig_quality})
""",
]
