#!/usr/bin/env bash
# One command for a GPU box: install carried wheels (if present), the GPU tests, the GPU-written wire
# fixtures, the codec benchmark and the one-GPU all-to-all (1 NCCL rank: the wire is a device copy;
# 2 gloo ranks sharing the GPU: an Ethernet-class link).
# Usage: scripts/gpu_check.sh [OUT_DIR]   (OUT_DIR defaults to $OUT or ./gpu_check_out)
# STEPS (default "tests fixtures bench alltoall train") picks what runs; train: benchmarks/train_compare.py;
# hotcold (not in the default): the hot/cold tests on the GPU + benchmarks/hotcold.py --device cuda.
# cpu (not in the default): benchmarks/cpu_codecs.py pinned to one core (taskset -c 0; CPU_BATCH, default
# 128,1024,8192,65536; design and other payloads), then ours on 1 vs 2 threads pinned to cores 0-1 (the
# batch API's scaling); CPU_ARGS is added to both. Needs numba (in the image), zstandard and lz4 (.whl/cpu),
# and constriction / pysz for those rows (left out where not installed).
# tt (not in the default): TT embeddings (seed 003): tests/test_tt.py's lookup tests on the GPU, then
# benchmarks/tt.py --device cuda (speed grid, memory of N=1e8 D=32 ranks 32,32) -> $OUTDIR/tt.json, then
# scripts/profile_tt.py (naive vs EcoRec at batch 16k, N=1e7, D=32, ranks 32: top ops, launches, host syncs)
# -> $OUTDIR/tt_profile.log.
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-gpu_check_out}}"; mkdir -p "$OUTDIR"
PY="${PYTHON:-python3}"
STEPS="${STEPS:-tests fixtures bench alltoall train}"
SITE=/tmp/dlrmcomp_site; mkdir -p "$SITE"
for d in .whl/cpu .whl/nvcomp; do
  ls $d/*.whl >/dev/null 2>&1 && "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" $d/*.whl
done
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import cupy, dlrmcomp.codecs as c; print('cupy', cupy.__version__, [n for n in c.available() if ':' in n])"
rc=0
has() { case " $STEPS " in *" $1 "*) return 0;; esac; return 1; }
if has tests; then
  "$PY" -m pytest -q -x -m gpu tests/test_gpu_wire.py tests/test_gpu.py tests/test_gpu_frames.py -p no:cacheprovider 2>&1 \
    | tee "$OUTDIR/pytest_gpu.log" || rc=1
fi
if has fixtures; then
  "$PY" scripts/write_wire_fixtures.py "$OUTDIR/wire" 2>&1 | tee "$OUTDIR/fixtures.log" || rc=1
  "$PY" scripts/write_gpu_fixtures.py "$OUTDIR/frames_check" >/dev/null 2>&1 || rc=1; rm -rf "$OUTDIR/frames_check"
fi
if has bench; then
  "$PY" benchmarks/gpu_codecs.py --out "$OUTDIR" ${BENCH_ARGS:-} 2>&1 | tee "$OUTDIR/bench.log" || rc=1
fi
if has alltoall; then
  A2A="--codecs ${A2A_CODECS:-fp32,fp16,bf16,int8,gpu:quant+ans} --sizes-mb ${A2A_SIZES:-16,128,512} --tables 8 --repeat 3"
  "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 benchmarks/alltoall.py --backend nccl $A2A \
    --out "$OUTDIR/alltoall_1gpu_nccl.json" 2>&1 | tail -12 | tee "$OUTDIR/alltoall_nccl.log" || rc=1
  "$PY" -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/alltoall.py --backend gloo --device cuda $A2A \
    --out "$OUTDIR/alltoall_1gpu_gloo2.json" 2>&1 | tail -12 | tee "$OUTDIR/alltoall_gloo.log" || rc=1
fi
if has train; then
  "$PY" benchmarks/train_compare.py --out "$OUTDIR/train" ${TRAIN_ARGS:-} 2>&1 | grep -v "^  warnings\|UserWarning" \
    | tail -12 | tee "$OUTDIR/train.log" || rc=1
fi
pin() { local cores=$1; shift; if command -v taskset >/dev/null; then taskset -c "$cores" "$@"; else "$@"; fi; }
if has cpu; then
  pin 0 "$PY" benchmarks/cpu_codecs.py --batch "${CPU_BATCH:-128,1024,8192,65536}" --payload design,other \
    --json "$OUTDIR/cpu_codecs_1t.json" ${CPU_ARGS:-} 2>&1 | tee "$OUTDIR/cpu_1t.log" || rc=1
  pin 0,1 "$PY" benchmarks/cpu_codecs.py --batch 1024,8192,65536 --payload design --threads 2 \
    --ours quant+match+huffman,quant+match+ans --json "$OUTDIR/cpu_codecs_2t.json" ${CPU_ARGS:-} 2>&1 \
    | tee "$OUTDIR/cpu_2t.log" || rc=1
fi
if has hotcold; then
  "$PY" -m pytest -q -x tests/test_hotcold.py -p no:cacheprovider 2>&1 | tail -5 | tee "$OUTDIR/pytest_hotcold.log" || rc=1
  "$PY" benchmarks/hotcold.py --device cuda --profile ${HOTCOLD_PROFILE:-demo} --json "$OUTDIR/hotcold_cuda.json" \
    2>&1 | grep -v "pass [12]/2" | tee "$OUTDIR/hotcold.log" || rc=1
fi
if has tt; then
  "$PY" -m pytest -q -x tests/test_tt.py -k "equals or micro or optimizers" -p no:cacheprovider 2>&1 \
    | tail -5 | tee "$OUTDIR/pytest_tt.log" || rc=1
  "$PY" benchmarks/tt.py --device cuda --profile ${TT_PROFILE:-full} --json "$OUTDIR/tt.json" ${TT_ARGS:-} 2>&1 \
    | tee "$OUTDIR/tt.log" || rc=1
  "$PY" scripts/profile_tt.py --device cuda 2>&1 | grep -v "^USDT\|profiler_st" | tee "$OUTDIR/tt_profile.log" || rc=1
fi
exit $rc
