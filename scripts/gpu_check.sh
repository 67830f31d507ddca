#!/usr/bin/env bash
# One command for a GPU box: install carried wheels (if present), the GPU tests, the GPU-written wire
# fixtures, the codec benchmark and the one-GPU all-to-all (1 NCCL rank: the wire is a device copy;
# 2 gloo ranks sharing the GPU: an Ethernet-class link).
# Usage: scripts/gpu_check.sh [OUT_DIR]   (OUT_DIR defaults to $OUT or ./gpu_check_out)
# STEPS (default "tests fixtures bench alltoall train") picks what runs; train: benchmarks/train_compare.py.
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
exit $rc
