CELLS = [
    """#md
# 06 · Hot/cold training: FAE and Slipstream

Seed 004 (`dlrmcomp.hotcold`). **FAE** profiles a sample of the inputs, keeps the most-read
embedding rows that fit a memory budget in one hot table on the training device, and trains every
epoch's cold inputs first (full tables, in host memory) and then its hot inputs (every index hot)
on the hot table. **Slipstream** snapshots the hot table twice during the hot phase, calls a row
stale when it moved less than T in every dimension, bisects T until the droppable fraction of a
sample is within 0.08 of the target D, and skips the inputs with at least alpha stale lookups for
the rest of the epoch.

1. **Hot fraction per budget** (1 MiB to 1 GiB): synthetic data at the full Criteo Kaggle
   cardinalities (demo size) and the Criteo / Avazu samples.
2. **Baseline vs FAE vs Slipstream** on the same inputs, seed and epochs: AUC, time per epoch,
   Lambda, T, skipped fraction, overheads.
3. **Skipped fraction vs D** and the **all-to-all payload** of hot vs cold batches.
""",
    """import dlrmcomp.notebook
from dlrmcomp.bench import hotcold as hc
from dlrmcomp.plots import hotcold as hc_plots
%matplotlib inline
""",
    """# parameters
PROFILE = "smoke"   # smoke | demo | full: run sizes (dlrmcomp.bench.hotcold.PROFILES)
# OUT_DIR: where results.json and figures go (None: a new runs/ folder)
OUT_DIR = None
DEVICE = "cpu"      # cpu | cuda (hot table on the GPU, the other rows in host memory)
DATASET = "synthetic"   # synthetic | criteo | avazu: the training comparison's data
CODEC = "quant+dedup+ans"
EB = 0.01
""",
    """#md
## 1 · Hot fraction per hot-memory budget
""",
    """size = hc.PROFILES[PROFILE]
ids, table_sizes = hc.synthetic_ids(size["profile_scale"], size["profile_batches"])
budgets = hc.hot_fractions(ids, table_sizes, size["budgets"]).assign(data=f"synthetic scale {size['profile_scale']:g}")
del ids
budgets
""",
    """fig_budget = hc_plots.hot_fraction(budgets)
""",
    """#md
## 2 · Baseline, FAE and Slipstream
""",
    """cfg = hc.run_config(PROFILE, DATASET)
table, trainers = hc.compare(cfg, DEVICE)
table.round(4)
""",
    """fig_compare = hc_plots.compare(table, f"{DATASET}: {cfg.iters} baseline iterations", hc.speed_clock(DEVICE))
""",
    """#md
## 3 · Skipped fraction vs D; payload of hot and cold batches
""",
    """sweep = hc.drop_sweep(trainers["slipstream"], size["drops"])
ratios = hc.payload_ratios(trainers["fae"], CODEC, EB)
display(sweep.round(4))
ratios.round(3)
""",
    """fig_sweep = hc_plots.drop_sweep(sweep)
fig_payload = hc_plots.payload(ratios)
""",
    """out = dlrmcomp.notebook.record({
    "profile": PROFILE, "device": DEVICE, "dataset": DATASET,
    "budgets": budgets.to_dict(orient="records"),
    "compare": table.to_dict(orient="records"),
    "hotcold": {mode: t.hotcold.summary() for mode, t in trainers.items() if t.hotcold is not None},
    "drop_sweep": sweep.to_dict(orient="records"),
    "payload": ratios.to_dict(orient="records"),
}, out_dir=OUT_DIR, figures={"hot_fraction": fig_budget, "compare": fig_compare, "drop_sweep": fig_sweep,
                             "payload": fig_payload})
print("recorded in", out)
""",
]
