"""All-to-all of pooled embeddings: raw vs compressed, against the speed-up model.

Run with torchrun (2 GPUs, NCCL): ``torchrun --nproc-per-node 2 benchmarks/alltoall.py --backend nccl``;
on CPU: ``--backend gloo``. Each rank owns ``--tables`` tables and sends every rank a
[rows, dim] slice of each (Zipf-popular rows of a random table, as ``bench.payload``), so the
per-rank all-to-all input is the payload size. Per payload size and codec: encode / exchange /
decode seconds (median of ``--repeat``), ratio CR = raw/sent bytes, Tc = raw/encode, Td =
raw/decode, B = raw bytes / raw exchange time at that size, and the model's prediction
``T_raw / S`` with ``S = 1/(1/CR + B(1/Tc + 1/Td))`` (:func:`dlrmcomp.bench.speedup.speedup`)
next to the measured encode+exchange+decode time. Rank 0 writes JSON and prints a table.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
import torch.distributed as dist

from dlrmcomp.bench.payload import table_payload
from dlrmcomp.bench.speedup import speedup
from dlrmcomp.dist.alltoall import CommStats, exchange
from dlrmcomp.dist.comms import get_comm_codec
from dlrmcomp.dist.train import init_process_group
from dlrmcomp.errorbound import EBSchedule

MB = 1 << 20


def payload(rank: int, world: int, tables: int, rows: int, dim: int, device) -> list[list[torch.Tensor]]:
    rng = np.random.default_rng(rank)
    out = []
    for d in range(world):
        out.append([torch.from_numpy(table_payload(rng, 200_000, rows, dim)).to(device) for _ in range(tables)])
    return out


def run_one(send, plan, rank, dim, codec, repeat):
    world = len(send)
    mine = plan[rank]
    recv_rows = [[send[0][0].shape[0]] * len(plan[s]) for s in range(world)]
    rows = []
    for i in range(repeat + 1):
        st = CommStats(sum(len(p) for p in plan))
        dist.barrier()
        exchange(send, [mine] * world, recv_rows, plan, dim, codec, iteration=10**9, stats=st)
        if codec is not None:
            codec.check()
        st.resolve()
        if i:
            rows.append((st.encode_s, st.exchange_s, st.decode_s, int(st.bytes_raw.sum()),
                         int(st.bytes_sent.sum()) + st.size_bytes, st.syncs))
    med = np.median(np.array(rows, dtype=np.float64), axis=0)
    t = torch.tensor(med[:3], dtype=torch.float64, device=send[0][0].device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)  # the slowest rank decides
    n = torch.tensor(med[3:5], dtype=torch.float64, device=send[0][0].device)
    dist.all_reduce(n)
    return t.cpu().tolist(), n.cpu().tolist(), int(med[5])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backend", default="nccl")
    p.add_argument("--device", default="auto", help="cuda with gloo: CUDA tensors, ranks sharing GPUs")
    p.add_argument("--sizes-mb", default="1,16,128,1024", help="per-rank all-to-all input, MB")
    p.add_argument("--codecs", default="fp32,fp16,bf16,int8,quant+ans,quant+dedup+zstd,gpu:quant+ans,gpu:quant+dedup+ans")
    p.add_argument("--cpu-codec-max-mb", type=float, default=128, help="skip CPU frame codecs above this size")
    p.add_argument("--tables", type=int, default=8)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--eb", type=float, default=0.03)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default="alltoall.json")
    args = p.parse_args(argv)
    rank, world, device = init_process_group(args.backend, timeout=300, device=args.device)
    plan = [list(range(r * args.tables, (r + 1) * args.tables)) for r in range(world)]
    schedule = EBSchedule.fixed(args.eb)
    on_gpu = device.type == "cuda"
    results = []
    for size_mb in [float(s) for s in args.sizes_mb.split(",")]:
        rows = max(1, int(size_mb * MB / (world * args.tables * args.dim * 4)))
        send = payload(rank, world, args.tables, rows, args.dim, device)
        raw_t = None
        for spec in args.codecs.split(","):
            gpu = spec.startswith(("gpu:", "nvcomp:"))
            frame = spec not in ("fp32", "fp16", "bf16", "int8")
            if (gpu and not on_gpu) or (frame and not gpu and size_mb > args.cpu_codec_max_mb):
                continue
            try:
                codec = get_comm_codec(spec, schedule)
                (enc, exch, dec), (raw, sent), syncs = run_one(send, plan, rank, args.dim, codec, args.repeat)
            except Exception as exc:  # noqa: BLE001  - a codec missing on this machine
                if rank == 0:
                    print(f"skip {spec} at {size_mb} MB: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                continue
            if spec == "fp32":
                raw_t = exch
            row = {"size_mb": size_mb, "codec": spec, "encode_s": enc, "exchange_s": exch, "decode_s": dec,
                   "total_s": enc + exch + dec, "bytes_raw": raw, "bytes_sent": sent, "cr": raw / sent,
                   "host_syncs": syncs}
            if raw_t and spec != "fp32":
                per_rank = raw / world
                bw = per_rank / raw_t
                tc = per_rank / enc if enc > 0 else np.inf
                td = per_rank / dec if dec > 0 else np.inf
                s = speedup(raw / sent, tc, td, bw)
                row.update(bandwidth_gbs=bw / 1e9, tc_gbs=tc / 1e9, td_gbs=td / 1e9, model_speedup=s,
                           predicted_s=raw_t / s, measured_speedup=raw_t / row["total_s"],
                           model_error=(raw_t / s) / row["total_s"] - 1)
            results.append(row)
            if rank == 0:
                print(json.dumps(row), flush=True)
        del send
        if on_gpu:
            torch.cuda.empty_cache()
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump({"world": world, "backend": args.backend, "tensors": device.type, "device": torch.cuda.get_device_name(0)
                       if on_gpu else "cpu", "tables_per_rank": args.tables, "dim": args.dim, "eb": args.eb,
                       "results": results}, f, indent=1)
        print("| MB/rank | codec | CR | encode ms | exchange ms | decode ms | total ms | raw ms | model S | "
              "measured S | model err | host syncs |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        raw_ms = {r["size_mb"]: r["exchange_s"] * 1e3 for r in results if r["codec"] == "fp32"}
        for r in results:
            print(f"| {r['size_mb']:g} | {r['codec']} | {r['cr']:.2f} | {r['encode_s']*1e3:.2f} | "
                  f"{r['exchange_s']*1e3:.2f} | {r['decode_s']*1e3:.2f} | {r['total_s']*1e3:.2f} | "
                  f"{raw_ms.get(r['size_mb'], float('nan')):.2f} | {r.get('model_speedup', 1.0):.2f} | "
                  f"{r.get('measured_speedup', 1.0):.2f} | {100 * r.get('model_error', 0.0):+.0f}% | {r['host_syncs']} |")
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
