"""Drive the wire path a few times for a profiler (ncu): python scripts/profile_wire.py [TABLES]."""
from __future__ import annotations

import sys

import torch

from dlrmcomp.bench.payload import embedding_payload
from dlrmcomp.exchange.device import DeviceWire

tables = int(sys.argv[1]) if len(sys.argv) > 1 else 8
xs = [torch.from_numpy(x).cuda() for x in embedding_payload(65536, 64, tables)]
w = DeviceWire()
for _ in range(2):
    enc = w.encode(xs, [0.03] * len(xs))
    lengths = enc.lengths.get()
    outs = [torch.empty_like(x) for x in xs]
    w.decode(enc.buffer, lengths, [tuple(x.shape) for x in xs], outs).check()
torch.cuda.synchronize()
print("ok", int(lengths.sum()))
