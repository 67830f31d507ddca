"""Shared checks for every codec (numcodecs' tests/common.py, plus the error bound and corruption)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import dlrmcomp
from dlrmcomp import codecs
from dlrmcomp.codecs import frame as framing

FIXTURES = Path(__file__).parent / "fixtures"

#: GPU-encoded frames committed under tests/fixtures/gpu_frames/<stem>.frame + <stem>.npy, written on a
#: GPU box by scripts/write_gpu_fixtures.py: each (recipe, code dtype, eb) case on inputs 0 and 3 of
#: gpu_test_arrays(np.random.default_rng(GPU_FIXTURE_SEED)).
GPU_FIXTURE_SEED = 5
GPU_FIXTURE_CASES = (("quant+ans", "int8", 0.03), ("quant+ans", "auto", 0.01),
                     ("quant+dedup+ans", "int16", 0.001), ("quant+dedup+ans", "int8", 0.05))
GPU_FIXTURE_INPUTS = (0, 3)


def gpu_fixture_stem(recipe: str, dtype: str, index: int) -> str:
    return f"{recipe.replace('+', '_')}_{dtype}_{index}"


GPU_FIXTURE_STEMS = tuple(gpu_fixture_stem(r, dt, i) for r, dt, _ in GPU_FIXTURE_CASES for i in GPU_FIXTURE_INPUTS)


def gpu_test_arrays(rng: np.random.Generator) -> list[np.ndarray]:
    """The GPU tests' inputs: 3 Zipf embedding payloads, a float32 array with NaN / +-inf / an escape
    (1e30, out of the int8 code range), a float64 array and a small uniform float32 array."""
    from dlrmcomp.bench.payload import embedding_payload

    zipf = embedding_payload(batch=2048, dim=64, n_tables=3, seed=int(rng.integers(1 << 30)), row_cap=5000)
    special = rng.normal(0, 1, (512, 16)).astype(np.float32)
    special[3, 2], special[7, 0], special[9, 9] = np.nan, np.inf, -np.inf
    special[11, 1] = 1e30  # escape: out of the int8 code range
    return zipf + [special, rng.normal(0, 1, (300, 8)), rng.uniform(-5, 5, (1000, 4)).astype(np.float32)]


def check_config(codec: codecs.Codec) -> None:
    """The config is JSON and rebuilds an equal codec."""
    config = json.loads(json.dumps(codec.get_config()))
    assert config["id"] == codec.name
    rebuilt = codecs.from_config(config)
    assert rebuilt == codec and rebuilt.get_config() == codec.get_config()


def check_error_bound(x: np.ndarray, y: np.ndarray, eb_abs: float) -> dict:
    """0 violations: finite elements within eb_abs, non-finite reproduced bit for bit."""
    assert y.dtype == x.dtype and y.shape == x.shape
    report = dlrmcomp.verify(x, y, eb_abs)
    assert report["violations"] == 0, report
    nonfinite = ~np.isfinite(x)
    assert x[nonfinite].tobytes() == y[nonfinite].tobytes()
    return report


def check_encode_decode(x: np.ndarray, codec: codecs.Codec) -> bytes:
    """Round trip through the codec and through ``dlrmcomp.decompress``; returns the frame."""
    frame = codec.encode(x)
    for y in (codec.decode(frame), dlrmcomp.decompress(frame), dlrmcomp.decompress(bytearray(frame))):
        if codec.lossy:
            check_error_bound(x, y, codecs.read_header(frame).eb_abs)
        else:
            assert y.dtype == x.dtype and y.shape == x.shape
            assert x.tobytes() == y.tobytes()
    return frame


def check_corruption(frame: bytes, rng: np.random.Generator, n: int = 1000, decode=dlrmcomp.decompress) -> None:
    """Random byte flips and truncations always raise CorruptStreamError (``decode``: any decoder)."""
    for i in range(n):
        bad = bytearray(frame)
        if i % 2:
            bad = bad[: int(rng.integers(0, len(frame)))]
        else:
            pos = int(rng.integers(0, len(frame)))
            bad[pos] ^= int(rng.integers(1, 256))
        with pytest.raises(dlrmcomp.CorruptStreamError):
            decode(bytes(bad))


def check_tampered_payload(frame: bytes, rng: np.random.Generator, n: int = 200, decode=dlrmcomp.decompress) -> None:
    """Flips inside the payload with a recomputed checksum: a clean error or a well-formed array."""
    header, payload = framing.unpack(frame)
    start = len(frame) - 4 - len(payload)
    for _ in range(n):
        body = bytearray(frame[:-4])
        if len(payload):
            body[start + int(rng.integers(0, len(payload)))] ^= int(rng.integers(1, 256))
        forged = bytes(body) + framing._CRC.pack(framing.zlib.crc32(bytes(body)))
        try:
            y = decode(forged)
        except dlrmcomp.CorruptStreamError:
            continue
        assert y.dtype == header.dtype and y.shape == header.shape


def check_backwards_compatibility(name: str, arrays: list[np.ndarray], codec: codecs.Codec) -> None:
    """Frozen frames under tests/fixtures/frames/<name>/ must still decode to the stored arrays.

    Set DLRMCOMP_WRITE_FIXTURES=1 to (re)write missing fixtures; CI never writes.
    """
    root = FIXTURES / "frames" / name.replace("+", "_")
    for i, x in enumerate(arrays):
        frame_path, array_path = root / f"{i:02d}.frame", root / f"{i:02d}.npy"
        if not frame_path.exists():
            if os.environ.get("DLRMCOMP_WRITE_FIXTURES") != "1":
                pytest.fail(f"missing fixture {frame_path}; write it with DLRMCOMP_WRITE_FIXTURES=1")
            root.mkdir(parents=True, exist_ok=True)
            frame = codec.encode(x)
            frame_path.write_bytes(frame)
            np.save(array_path, dlrmcomp.decompress(frame))
        expected = np.load(array_path)
        got = dlrmcomp.decompress(frame_path.read_bytes())
        assert got.dtype == expected.dtype and got.shape == expected.shape and got.tobytes() == expected.tobytes()


def execute_notebook(stem: str, tmp_path: Path, profile: str = "smoke", **parameters) -> dict:
    """Run notebooks/<stem>.ipynb with papermill into tmp_path; return its recorded results."""
    from dlrmcomp.notebook import execute, notebooks_dir, read_results

    run = execute(notebooks_dir() / f"{stem}.ipynb", tmp_path, profile, parameters, cell_timeout=600)
    assert run.ok, run.error
    return read_results(run.out_dir)


# -- adapters -----------------------------------------------------------------------------------

def check_numcodec(codec) -> None:
    """A numcodecs face of a dlrmcomp codec: JSON config rebuilt by ``numcodecs.get_codec``, repr
    evaluates back to an equal codec, the id carries the dlrmcomp name."""
    import numcodecs

    from dlrmcomp.adapters import numcodecs as adapter

    config = json.loads(json.dumps(codec.get_config()))
    assert config["id"] == adapter.PREFIX + codec.codec.name == type(codec).codec_id
    assert numcodecs.get_codec(config) == codec
    assert eval(repr(codec), vars(adapter)) == codec


def torchrec_available() -> bool:
    """torchrec with its fbgemm ops importable (any failure, e.g. a CPU fbgemm next to a CUDA torch: no)."""
    try:
        import torchrec.distributed.embeddingbag  # noqa: F401
        return True
    except Exception:  # noqa: BLE001
        return False


#: the 2-rank TorchRec test: 4 tables of dim 16 placed table-wise, with very different scales so that
#: a wrong table layout would put a big table's bound on a small one
TR_LAYOUT, TR_DIM, TR_ROWS, TR_BATCH = [[0, 3], [1, 2]], 16, 50, 8
TR_SCALES = (0.01, 1.0, 10.0, 0.1)


def tr_weights(table: int):
    import torch

    g = torch.Generator().manual_seed(100 + table)
    return torch.randn(TR_ROWS, TR_DIM, generator=g) * TR_SCALES[table]


def tr_batch(rank: int, step: int):
    """(ids [4, B, 2], output gradient G [B, 4 * D]) of ``rank`` at ``step``: every bag has 2 ids."""
    import torch

    g = torch.Generator().manual_seed(1000 * step + rank)
    ids = torch.randint(0, TR_ROWS, (4, TR_BATCH, 2), generator=g)
    return ids, torch.randn(TR_BATCH, 4 * TR_DIM, generator=g) * torch.tensor(TR_SCALES).repeat_interleave(TR_DIM)


def torchrec_ebc_worker(rank, world, port, outdir, specs, schedule_dict, steps=2):
    """A table-wise sharded EmbeddingBagCollection on ``world`` gloo ranks per registry spec
    (``fp32``, ``ours``: our codec both ways, ``mixed``: ours forward + TorchRec FP16 backward);
    records, per spec and step, the pooled outputs and the weight gradients of the local tables."""
    import pickle
    import traceback

    import torch

    from dlrmcomp.dist.train import init_process_group

    try:
        init_process_group("gloo", timeout=60, rank=rank, world=world, port=port)
        from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor
        from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
        from torchrec.distributed.fbgemm_qcomm_codec import CommType, QCommsConfig, get_qcomm_codecs_registry
        from torchrec.distributed.model_parallel import DistributedModelParallel
        from torchrec.distributed.types import ShardingPlan

        from dlrmcomp import EBSchedule
        from dlrmcomp.adapters.torchrec import qcomm_codecs_registry, set_layout, table_wise_plan, tables_per_rank

        names = [f"t{i}" for i in range(4)]
        configs = [EmbeddingBagConfig(name=n, embedding_dim=TR_DIM, num_embeddings=TR_ROWS, feature_names=[f"f{i}"])
                   for i, n in enumerate(names)]
        results = {}
        for spec in specs:
            registry = None
            if spec != "fp32":
                registry = qcomm_codecs_registry(EBSchedule.from_dict(schedule_dict), row_dim=TR_DIM)
            if spec == "mixed":
                theirs = get_qcomm_codecs_registry(QCommsConfig(CommType.FP16, CommType.FP16), device=torch.device("cpu"))
                op = "POOLED_EMBEDDINGS_ALL_TO_ALL"
                registry[op] = type(theirs[op])(forward=registry[op].forward, backward=theirs[op].backward)
            sharder = EmbeddingBagCollectionSharder(qcomm_codecs_registry=registry)
            ebc = EmbeddingBagCollection(tables=configs, device=torch.device("meta"))
            plan = table_wise_plan(ebc, TR_LAYOUT, sharder)
            if registry is not None:
                set_layout(registry, tables_per_rank(plan, names, world))
            model = DistributedModelParallel(ebc, device=torch.device("cpu"), plan=ShardingPlan({"": plan}),
                                             sharders=[sharder])
            params = {}
            with torch.no_grad():
                for key, value in model.state_dict().items():
                    table = int(key.split(".")[-2][1:])
                    for shard in value.local_shards():
                        shard.tensor.copy_(tr_weights(table))
                for name, p in model.named_parameters():
                    params[int(name.split(".")[-2][1:]) if name.split(".")[-2][1:].isdigit() else name] = p
            steps_out = []
            for step in range(steps):
                ids, grad = tr_batch(rank, step)
                kjt = KeyedJaggedTensor(keys=[f"f{i}" for i in range(4)], values=ids.reshape(-1),
                                        lengths=torch.full((4 * TR_BATCH,), 2))
                model.zero_grad(set_to_none=True)
                out = model(kjt)
                out = out.wait() if hasattr(out, "wait") else out
                pooled = torch.cat([out[f"f{i}"] for i in range(4)], dim=1)
                (pooled * grad).sum().backward()
                grads = {k: p.grad.detach().clone() for k, p in params.items() if p.grad is not None}
                steps_out.append({"pooled": pooled.detach().clone(), "grads": grads})
            record = {"steps": steps_out, "params": sorted(str(k) for k in params)}
            if registry is not None:
                codecs = registry["POOLED_EMBEDDINGS_ALL_TO_ALL"]
                record["forward"] = {"violations": codecs.forward.violations, "last": codecs.forward.last}
                if hasattr(codecs.backward, "violations"):
                    record["backward"] = {"violations": codecs.backward.violations, "last": codecs.backward.last}
            results[spec] = record
        with open(os.path.join(outdir, f"tr.{rank}.pkl"), "wb") as f:
            pickle.dump(results, f)
        torch.distributed.destroy_process_group()
    except Exception:  # noqa: BLE001
        with open(os.path.join(outdir, f"tr.{rank}.pkl"), "wb") as f:
            pickle.dump({"error": traceback.format_exc()}, f)
        raise
