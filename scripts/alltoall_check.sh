#!/usr/bin/env bash
# 2-GPU check of the compressed all-to-all (NCCL): the benchmark, then a short 2-rank training run.
# On the device machine: bash scripts/alltoall_check.sh  (results under ${OUT:-/tmp/a2a_out})
set -euo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
OUT=${OUT:-/tmp/a2a_out}; mkdir -p "$OUT"
if [ -d .whl/cpu ] && ! python3 -c "import zstandard, lz4, numba" 2>/dev/null; then
  mkdir -p /tmp/site && tar -xJf .whl/cpu/numba_site.tar.xz -C /tmp/site
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/cpu/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpus.txt"
python3 -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/alltoall.py --backend nccl \
  --sizes-mb "${SIZES:-1,16,128,1024}" --out "$OUT/alltoall.json" 2>&1 | tee "$OUT/alltoall.log"
python3 -m torch.distributed.run --standalone --nproc-per-node 2 -m dlrmcomp.dist --backend nccl --profile smoke \
  --iters 20 --batch-size 4096 --eval-every 20 --compression codec --codec quant+ans --bwd-comm int8 --dedup \
  --out "$OUT/train" 2>&1 | tail -3 | tee "$OUT/train.log"
