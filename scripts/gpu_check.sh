#!/usr/bin/env bash
# One command for a GPU box: install carried wheels (if present), run the GPU tests, the benchmark.
# Usage: scripts/gpu_check.sh [OUT_DIR]   (OUT_DIR defaults to $OUT or ./gpu_check_out)
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-gpu_check_out}}"; mkdir -p "$OUTDIR"
PY="${PYTHON:-python3}"
SITE=/tmp/dlrmcomp_site; mkdir -p "$SITE"
if [ -f .whl/cpu/numba_site.tar.xz ]; then tar -xJf .whl/cpu/numba_site.tar.xz -C "$SITE"; fi
for d in .whl/cpu .whl/nvcomp; do
  ls $d/*.whl >/dev/null 2>&1 && "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" $d/*.whl
done
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import cupy, dlrmcomp.codecs as c; print('cupy', cupy.__version__, [n for n in c.available() if ':' in n])"
rc=0
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  "$PY" -m pytest -q -m gpu tests/test_gpu.py tests/test_gpu_frames.py -p no:cacheprovider 2>&1 | tee "$OUTDIR/pytest_gpu.log" || rc=1
fi
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  DLRMCOMP_GPU_FIXTURE_OUT="$OUTDIR" "$PY" -m pytest -q -m gpu tests/test_gpu.py -k write_gpu_fixtures -p no:cacheprovider >/dev/null 2>&1; rm -rf "$OUTDIR/gpu_frames"
  "$PY" benchmarks/gpu_codecs.py --out "$OUTDIR" ${BENCH_ARGS:-} 2>&1 | tee "$OUTDIR/bench.log" || rc=1
fi
exit $rc
