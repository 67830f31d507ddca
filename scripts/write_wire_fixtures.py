"""Write GPU-encoded wire buffers as test fixtures (run on a GPU; commit tests/fixtures/wire/*.npz).

Each file holds one exchange's packed wire buffer as the GPU wrote it (``buffer``, ``lengths``),
the inputs and the arrays the GPU decoded (``input_i``, ``expected_i``); tests/test_wire.py decodes
the buffer on the CPU and asserts the same arrays. Usage: python scripts/write_wire_fixtures.py OUT_DIR
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from dlrmcomp.exchange.device import DeviceWire

# (name, bounds per slice, lanes, chunk): int8 codes at the CPU's lane layout, int16 at the GPU default
CASES = (("int8_l32", [0.03, 0.01, 0.05, 0.03], 32, 1 << 18), ("int16_l128", [0.001, 0.0005, 0.001, 0.001], 128, 1 << 16))


def inputs(seed: int = 11) -> list[np.ndarray]:
    from dlrmcomp.bench.payload import embedding_payload

    rng = np.random.default_rng(seed)
    xs = embedding_payload(batch=3000, dim=16, n_tables=2, seed=seed, row_cap=4000)
    special = rng.normal(0, 1, (257, 8)).astype(np.float32)
    special[3, 2], special[7, 0], special[9, 5] = np.nan, np.inf, -np.inf
    return xs + [special, rng.uniform(-3, 3, (1, 32)).astype(np.float32)]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    xs = inputs()
    for name, bounds, lanes, chunk in CASES:
        w = DeviceWire(lanes=lanes, chunk=chunk)
        enc = w.encode([torch.from_numpy(x).cuda() for x in xs], bounds)
        lengths = enc.lengths.get()
        buffer = enc.buffer[:int(lengths.sum())].cpu().numpy()
        outs = [torch.empty(x.shape, device="cuda") for x in xs]
        w.decode(torch.from_numpy(buffer).cuda(), lengths, [x.shape for x in xs], outs).check()
        arrays = {f"input_{i}": x for i, x in enumerate(xs)}
        arrays.update({f"expected_{i}": o.cpu().numpy() for i, o in enumerate(outs)})
        np.savez_compressed(out / f"{name}.npz", buffer=buffer, lengths=lengths, n_slices=len(xs), **arrays)
        print(f"{name}: {len(xs)} slices, {buffer.size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
