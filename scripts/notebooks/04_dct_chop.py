CELLS = [
    """#md
# 04 · DCT+Chop

The portable matmul compressor of seed 002 (`dlrmcomp.codecs.dct`): every 8x8 block's DCT keeps
its low-frequency `cf x cf` corner. Three questions:

1. **Rate-distortion**: ratio vs PSNR on the real fields and an image a package ships, for `dct`
   at cf 1-7 (fp32 coefficients, the Graphcore fold, bf16 as the seed stores them), the
   error-bounded `dct+quant`, ZFP fixed-rate (the seed's baseline), SZ3 and our `quant+ans`.
   Read the figure across at equal PSNR; the table does that at the PSNR of dct cf=4.
2. **Throughput** on `DEVICE`: the seed's grown matrices vs the blockwise form, fp32 and bf16.
3. **Training on compressed inputs**: inputs compressed on the host, decompressed as the model's
   first step; denoising patches of the real fields and classifying scikit-learn's digits,
   uncompressed and at cf 2, 4, 6 (the paper: degradation of 3% or less).
""",
    """import dlrmcomp
import dlrmcomp.notebook
from dlrmcomp import codecs
from dlrmcomp.bench import dct as dct_bench
from dlrmcomp.bench import dct_training
from dlrmcomp.plots import codecs as codec_plots
from dlrmcomp.plots import dct as dct_plots
%matplotlib inline
""",
    """# parameters
PROFILE = "smoke"   # smoke | demo | full: data, sweep and batch sizes (dlrmcomp.bench.dct.PROFILES)
# OUT_DIR: where results.json and figures go (None: a new runs/ folder)
OUT_DIR = None
DEVICE = "cpu"      # torch device of the throughput and training runs
TRAIN_CFS = [2, 4, 6]
TRAIN = True        # False: skip the training comparison
SEED = 0
""",
    """#md
## 1 · Rate-distortion
""",
    """size = dct_bench.PROFILES[PROFILE]
data = dct_bench.rd_data(PROFILE)
rd = dct_bench.rate_distortion(data, size["cfs"], size["bounds"])
equal = dct_bench.at_equal_psnr(rd)
equal.round(2)
""",
    """fig_rd = dct_plots.rate_distortion(rd)
""",
    """name = next(iter(data))
x = data[name]
frame = codecs.get("dct", cf=4).encode(x)
achieved = codecs.read_header(frame).stats
fig_view = codec_plots.field_view(x, dlrmcomp.decompress(frame), f"{name}: dct cf=4, ratio {x.nbytes / len(frame):.1f}, "
                                  f"PSNR {achieved['psnr']:.1f} dB")
""",
    """#md
## 2 · Throughput (GB/s over the input bytes)
""",
    """tp = dct_bench.throughput(DEVICE, size["sides"], batch_mb=size["batch_mb"], repeat=size["repeat"])
forms = dct_bench.forms_agree(DEVICE, seed=SEED)
tp.round(3)
""",
    """fig_tp = dct_plots.throughput_bars(tp)
""",
    """#md
## 3 · Training on compressed inputs
""",
    """train = dct_training.compare(PROFILE, TRAIN_CFS, DEVICE, SEED) if TRAIN else None
train
""",
    """fig_train = dct_plots.training(train) if TRAIN else None
""",
    """bounded = rd[rd.violations.notna()]
out = dlrmcomp.notebook.record({
    "profile": PROFILE, "device": DEVICE,
    "violations": int(bounded.violations.sum()),
    "forms_max_abs_diff": forms,
    "rate_distortion": rd.to_dict(orient="records"),
    "equal_psnr": equal.to_dict(orient="records"),
    "throughput": tp.to_dict(orient="records"),
    "training": None if train is None else train.to_dict(orient="records"),
}, out_dir=OUT_DIR, figures={"rate_distortion": fig_rd, "field": fig_view, "throughput": fig_tp,
                             **({"training": fig_train} if TRAIN else {})})
print("recorded in", out)
""",
]
