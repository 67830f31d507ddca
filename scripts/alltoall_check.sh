#!/usr/bin/env bash
# Two GPUs (nvidia-h200-x2): the compressed all-to-all and short training runs over NVLink (NCCL's
# default) and over NCCL's socket transport (as two nodes without InfiniBand would talk), one rank a GPU.
# On the device machine: bash scripts/alltoall_check.sh   (results under ${OUT:-/tmp/a2a_out})
# SIZES (default 16,128,1024 MB/rank), CODECS, ITERS override the defaults.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/a2a_out}; mkdir -p "$OUT"
SITE=/tmp/dlrmcomp_site; mkdir -p "$SITE"
for d in .whl/cpu .whl/nvcomp; do
  ls $d/*.whl >/dev/null 2>&1 && python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" $d/*.whl
done
export PYTHONPATH="$SITE:$PWD"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpus.txt"
nvidia-smi topo -m > "$OUT/topology.txt" 2>&1 || true
CODECS=${CODECS:-fp32,fp16,bf16,int8,gpu:quant+ans}
rc=0
for transport in nvlink socket; do
  if [ "$transport" = socket ]; then
    env_vars="NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 NCCL_IB_DISABLE=1 NCCL_NET=Socket NCCL_SOCKET_IFNAME=lo"
  else
    env_vars=""
  fi
  env $env_vars python3 -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/alltoall.py --backend nccl \
    --codecs "$CODECS" --sizes-mb "${SIZES:-16,128,1024}" --out "$OUT/alltoall_$transport.json" 2>&1 \
    | tail -20 | tee "$OUT/alltoall_$transport.log" || rc=1
  env $env_vars python3 benchmarks/train_compare.py --out "$OUT/train_$transport" --nproc 2 --backend nccl --device auto \
    --iters "${ITERS:-40}" --codecs fp32,int8,gpu:quant+ans 2>&1 | tail -8 | tee "$OUT/train_$transport.log" || rc=1
done
exit $rc
