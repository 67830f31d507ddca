"""Adapters: dlrmcomp codecs as numcodecs/zarr codecs, and the TorchRec comm codec.

Skips cleanly where numcodecs, zarr or torchrec is absent; the TorchRec codec itself is plain torch
and is tested everywhere (the way TorchRec's codec tests exercise a codec), and with TorchRec's own
sharded EmbeddingBagCollection on 2 gloo ranks where torchrec imports.
"""
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dlrmcomp import EBSchedule, codecs
from dlrmcomp.adapters.torchrec import EBQuantCommCodec, FixedRateFormat, IterationClock, tables_per_rank

from common import (TR_DIM, TR_LAYOUT, check_error_bound, check_numcodec, torchrec_available,
                    tr_batch, tr_weights)

ROOT = Path(__file__).resolve().parents[1]


def embeddings(shape=(200, 48), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.05, shape) * rng.uniform(0.1, 10, shape[-1])).astype(np.float32)


# -- numcodecs / zarr ------------------------------------------------------------------------------

def test_import_pulls_no_adapter_dependency():
    code = ("import sys, dlrmcomp, dlrmcomp.codecs, dlrmcomp.adapters; "
            "bad = [m for m in ('numcodecs', 'zarr', 'torchrec', 'fbgemm_gpu') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_entry_points_match_the_registry():
    adapter = pytest.importorskip("dlrmcomp.adapters.numcodecs")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["numcodecs.codecs"]
    assert declared == adapter.entry_points()
    assert {cid.removeprefix(adapter.PREFIX) for cid in declared} == set(codecs.registered())


def test_every_available_codec_is_a_numcodecs_codec():
    adapter = pytest.importorskip("dlrmcomp.adapters.numcodecs")
    x = embeddings()
    out = np.empty_like(x)
    for name in codecs.available():
        codec = adapter.numcodec(name, eb=0.01) if codecs.is_lossy(name) else adapter.numcodec(name)
        check_numcodec(codec)
        assert codec == adapter.numcodec(codec.codec)
        frame = codec.encode(x)
        y = codec.decode(frame)
        assert codec.decode(frame, out=out) is out and out.tobytes() == y.tobytes()
        eb_abs = codecs.read_header(frame).eb_abs
        if eb_abs is not None:  # error-bounded: the bound resolved on this array, kept
            assert eb_abs == pytest.approx(0.01 * float(np.ptp(x)), rel=1e-6)
            check_error_bound(x, y, eb_abs)
        elif not codec.lossy:
            assert y.tobytes() == x.tobytes()
        else:  # lossy without a bound (DCT+Chop)
            assert y.shape == x.shape and y.dtype == x.dtype


def test_recipes_outside_the_defaults_register_on_demand():
    adapter = pytest.importorskip("dlrmcomp.adapters.numcodecs")
    import numcodecs

    codec = adapter.numcodec("quant+dedup+lz4", eb=0.05)
    assert type(codec).__name__ == "QuantDedupLz4"
    assert numcodecs.get_codec(codec.get_config()) == codec
    with pytest.raises(ValueError):
        adapter.numcodec("quant+nonsense", eb=0.05)
    with pytest.raises(ValueError):  # the id names a different codec than the class
        adapter.QuantAns.from_config({"id": "dlrmcomp.quant+zstd", "eb": 0.01})


def write_zarr(path, x, chunks, compressor):
    """A zarr format-2 array (zarr 3 API, or zarr 2 where that is what is installed)."""
    zarr = pytest.importorskip("zarr")
    if hasattr(zarr, "create_array"):
        z = zarr.create_array(str(path), shape=x.shape, chunks=chunks, dtype=x.dtype, zarr_format=2,
                              compressors=compressor, fill_value=0)
    else:
        z = zarr.open(str(path), mode="w", shape=x.shape, chunks=chunks, dtype=x.dtype, compressor=compressor,
                      fill_value=0)
    z[:] = x


def test_zarr_array_keeps_the_bound_per_chunk(tmp_path):
    adapter = pytest.importorskip("dlrmcomp.adapters.numcodecs")
    zarr = pytest.importorskip("zarr")
    x = embeddings((200, 48))
    x[:, :24] *= 100  # chunks with very different ranges get very different absolute bounds
    chunks, eb = (64, 24), 0.01
    write_zarr(tmp_path / "a.zarr", x, chunks, adapter.numcodec("quant+ans", eb=eb))
    y = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[:]
    assert y.shape == x.shape and y.dtype == x.dtype
    bounds = set()
    for i in range(0, x.shape[0], chunks[0]):
        for j in range(0, x.shape[1], chunks[1]):
            frame = (tmp_path / "a.zarr" / f"{i // chunks[0]}.{j // chunks[1]}").read_bytes()
            eb_abs = codecs.read_header(frame).eb_abs
            block = x[i:i + chunks[0], j:j + chunks[1]]
            if block.shape == chunks:
                assert eb_abs == pytest.approx(eb * float(np.ptp(block)), rel=1e-6)
            else:  # an edge chunk is padded with the fill value before it is compressed
                assert eb_abs >= eb * float(np.ptp(block)) * (1 - 1e-6)
            check_error_bound(block, y[i:i + chunks[0], j:j + chunks[1]], eb_abs)
            bounds.add(round(eb_abs, 6))
    assert len(bounds) > 2


def test_entry_points_let_numcodecs_and_zarr_find_our_codecs_in_a_fresh_process(tmp_path):
    pytest.importorskip("dlrmcomp.adapters.numcodecs")
    from importlib.metadata import entry_points

    if "dlrmcomp.quant+ans" not in {e.name for e in entry_points(group="numcodecs.codecs")}:
        pytest.fail("dlrmcomp's numcodecs entry points are not installed: reinstall (pip install -e .)")
    has_zarr = True
    try:
        from dlrmcomp.adapters.numcodecs import numcodec

        write_zarr(tmp_path / "a.zarr", embeddings(), (64, 48), numcodec("quant+zstd", eb=0.02))
    except pytest.skip.Exception:
        has_zarr = False
    code = textwrap.dedent(f"""
        import sys, numcodecs
        codec = numcodecs.get_codec({{"id": "dlrmcomp.quant+ans", "eb": 0.01}})
        assert type(codec).__name__ == "QuantAns", codec
        if {has_zarr}:
            import zarr
            assert zarr.open_array({str(tmp_path / "a.zarr")!r}, mode="r")[:].shape == (200, 48)
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


# -- TorchRec comm codec: the codec alone (plain torch) -------------------------------------------------

def payloads():
    g = torch.Generator().manual_seed(0)
    zipf = torch.randn(32, 16, generator=g)[torch.randint(0, 32, (64 * 4,), generator=g)]
    offset = torch.randn(64, 16, generator=g) * 3 + 1000  # far from zero
    constant = torch.full((8, 16), 2.5)
    mixed = torch.cat([torch.randn(10, 16, generator=g) * 1e-4, torch.randn(10, 16, generator=g) * 1e3])
    return [zipf, offset, constant, mixed, torch.zeros(0, 16)]


@pytest.mark.parametrize("code_dtype", ["int8", "int16"])
def test_fixed_rate_codec_round_trip_sizes_and_bound(code_dtype):
    fmt = FixedRateFormat(16, code_dtype)
    for eb in (fmt.min_rel_bound, 0.03, 0.5):
        codec = EBQuantCommCodec(EBSchedule.fixed(eb), 16, code_dtype)
        for x in payloads():
            buf = codec.encode(x.reshape(-1), codec.create_context())
            assert buf.dtype == codec.quantized_dtype == torch.uint8
            assert buf.numel() == codec.calc_quantized_size(x.numel())
            y = codec.decode(buf).view(x.shape)
            if x.numel():
                assert float((y - x).abs().max()) <= eb * float(x.max() - x.min())
        assert codec.violations == 0


def test_non_finite_values_are_counted_as_violations_of_their_table_only():
    """A fixed-rate code cannot carry NaN/inf (a diverged run): the encoder reports it, and the other
    tables keep their bounds."""
    codec = EBQuantCommCodec(EBSchedule.fixed(0.01), 4, tables_per_rank=[[0, 1]])
    x = torch.randn(8, 2, 4)
    x[3, 0, 1] = float("nan")
    ctx = codec.create_context()
    ctx.rank = 0
    y = codec.decode(codec.encode(x.reshape(-1), ctx)).view(8, 2, 4)
    assert codec.violations > 0
    assert float((y[:, 1] - x[:, 1]).abs().max()) <= 0.01 * float(x[:, 1].max() - x[:, 1].min())


def test_fixed_rate_slices_decode_independently():
    """TorchRec splits one encoded payload by calc_quantized_size and decodes concatenations of
    slices from different ranks: every whole-row slice must decode on its own."""
    codec = EBQuantCommCodec(EBSchedule.fixed(0.01), 16)
    a, b = torch.randn(6, 16), torch.randn(10, 16) * 50
    whole = codec.decode(torch.cat([codec.encode(a), codec.encode(b)]))
    buf = codec.encode(a)
    first, second = buf.split([codec.calc_quantized_size(16 * 2), codec.calc_quantized_size(16 * 4)])
    assert torch.equal(torch.cat([codec.decode(first), codec.decode(second)]), codec.decode(buf))
    assert torch.equal(whole[:a.numel()], codec.decode(buf))
    with pytest.raises(ValueError, match="whole rows"):
        codec.calc_quantized_size(17)


def test_int8_codes_need_a_bound_the_codes_can_span():
    with pytest.raises(ValueError, match="int16"):
        EBQuantCommCodec(EBSchedule.fixed(0.001), 16, "int8")
    EBQuantCommCodec(EBSchedule.fixed(0.001), 16, "int16")
    with pytest.raises(ValueError):
        EBQuantCommCodec(EBSchedule(), 16, "int4")


def test_config_round_trips_through_json():
    codec = EBQuantCommCodec(EBSchedule.auto([10, 1000, 100]), 8, "int16", "backward", [[1], [0, 2]])
    rebuilt = EBQuantCommCodec.from_config(json.loads(json.dumps(codec.get_config())))
    assert rebuilt.get_config() == codec.get_config()


def test_bounds_follow_the_schedule_per_table_and_iteration_both_ways():
    schedule = EBSchedule(tighten_tables=(0,), loosen_tables=(2,), early_stage=20)
    layout = [[0, 3], [1, 2]]
    clock = IterationClock()
    fwd = EBQuantCommCodec(schedule, 4, direction="forward", tables_per_rank=layout, clock=clock)
    bwd = EBQuantCommCodec(schedule, 4, direction="backward", tables_per_rank=layout, clock=clock)
    scale = torch.tensor([1.0, 30.0])  # rank 0's tables t0, t3
    for t in range(3):
        x = torch.randn(6, 2, 4) * scale[None, :, None]  # [B_global, local tables, D]
        ctx = fwd.create_context()
        fwd.padded_size(x.reshape(6, 8), [8, 8], 0, ctx)
        y = fwd.decode(fwd.encode(x.reshape(-1), ctx)).view(6, 2, 4)
        rec = fwd.last
        assert rec.iteration == t and rec.tables == (0, 3)
        assert rec.eb_rel == pytest.approx([schedule.bound(0, t), schedule.bound(3, t)])
        for j in range(2):
            span = float(x[:, j].max() - x[:, j].min())
            assert rec.eb_abs[j] == pytest.approx(rec.eb_rel[j] * span, rel=1e-5)
            assert float((y[:, j] - x[:, j]).abs().max()) <= rec.eb_abs[j]
        # backward on rank 0: one [B_local=3, n_s tables, D] block per destination rank s
        g = torch.randn(3 * 4 * 4) * 5
        bwd.decode(bwd.encode(g, bwd.create_context()))
        assert bwd.last.iteration == t and bwd.last.tables == (0, 1, 2, 3)
        assert bwd.last.eb_rel == pytest.approx([schedule.bound(k, t) for k in range(4)])
    assert fwd.violations == bwd.violations == 0
    with pytest.raises(ValueError, match="layout"):
        fwd.encode(torch.randn(5 * 4), fwd.create_context())  # 5 rows are not whole samples of 2 tables


def test_layout_from_a_plan_is_table_wise_only():
    tw = lambda r: SimpleNamespace(sharding_type="table_wise", ranks=[r])  # noqa: E731
    plan = {"a": tw(1), "b": tw(0), "c": tw(1)}
    assert tables_per_rank(plan, ["a", "b", "c"], 2) == [[1], [0, 2]]
    plan["b"] = SimpleNamespace(sharding_type="row_wise", ranks=[0, 1])
    with pytest.raises(ValueError, match="table-wise"):
        tables_per_rank(plan, ["a", "b", "c"], 2)


# -- TorchRec's own sharded EmbeddingBagCollection on 2 gloo ranks ------------------------------------

def reference(step: int, world: int) -> tuple[list[torch.Tensor], dict[int, torch.Tensor], list[torch.Tensor]]:
    """Exact pooled outputs per rank, weight gradients per table (over the global batch, divided by
    the world size as TorchRec does) and each rank's output gradient."""
    weights = [tr_weights(t) for t in range(4)]
    batches = [tr_batch(r, step) for r in range(world)]
    pooled = [torch.cat([weights[t][ids[t]].sum(1) for t in range(4)], dim=1) for ids, _ in batches]
    grads = {}
    for t in range(4):
        grad = torch.zeros_like(weights[t])
        for ids, g in batches:
            cols = g[:, t * TR_DIM:(t + 1) * TR_DIM]
            for k in range(ids.shape[2]):
                grad.index_add_(0, ids[t, :, k], cols)
        grads[t] = grad / world
    return pooled, grads, [g for _, g in batches]


def test_torchrec_sharded_ebc_on_two_gloo_ranks(tmp_path):
    if not torchrec_available():  # checked here, not at collection: importing torchrec takes seconds
        pytest.skip("torchrec (with fbgemm-gpu-cpu) not installed")
    import common
    from dlrmcomp.dist import testing

    world, steps = 2, 2
    schedule = EBSchedule(tighten_tables=(0,), loosen_tables=(2,), early_stage=2)
    codes = testing.spawn(common.torchrec_ebc_worker, world, str(tmp_path), ["fp32", "ours", "mixed"],
                          schedule.to_dict(), steps, timeout=150)
    results = [testing.load(tmp_path / f"tr.{r}.pkl") for r in range(world)]
    assert codes == [0] * world, [r.get("error") for r in results]
    for step in range(steps):
        pooled_ref, grads_ref, out_grads = reference(step, world)
        for rank in range(world):
            res = {spec: results[rank][spec]["steps"][step] for spec in ("fp32", "ours", "mixed")}
            torch.testing.assert_close(res["fp32"]["pooled"], pooled_ref[rank], rtol=1e-5, atol=1e-5)
            for t in TR_LAYOUT[rank]:
                torch.testing.assert_close(res["fp32"]["grads"][t], grads_ref[t], rtol=1e-5, atol=1e-5)
            global_pooled = torch.cat(pooled_ref)
            for spec in ("ours", "mixed"):  # forward: each table within its bound, resolved on its owner
                for t in range(4):
                    cols = slice(t * TR_DIM, (t + 1) * TR_DIM)
                    span = float(global_pooled[:, cols].max() - global_pooled[:, cols].min())
                    err = float((res[spec]["pooled"][:, cols] - pooled_ref[rank][:, cols]).abs().max())
                    assert err <= schedule.bound(t, step) * span * (1 + 1e-5) + 1e-6, (spec, rank, t)
            for t in TR_LAYOUT[rank]:  # backward: each gradient value within its bound, summed per id
                cols = slice(t * TR_DIM, (t + 1) * TR_DIM)
                span = max(float(g[:, cols].max() - g[:, cols].min()) for g in out_grads)
                ids = torch.cat([tr_batch(r, step)[0][t].reshape(-1) for r in range(world)])
                count = torch.bincount(ids, minlength=grads_ref[t].shape[0]).float()[:, None]
                limit = count * schedule.bound(t, step) * span / world * (1 + 1e-4) + 1e-5
                assert bool(((res["ours"]["grads"][t] - grads_ref[t]).abs() <= limit).all()), (rank, t)
    for rank in range(world):
        ours = results[rank]["ours"]
        assert ours["forward"]["violations"] == ours["backward"]["violations"] == 0
        assert ours["forward"]["last"].iteration == ours["backward"]["last"].iteration == steps - 1
        assert ours["forward"]["last"].tables == tuple(sorted(TR_LAYOUT[rank]))
        assert ours["backward"]["last"].tables == (0, 1, 2, 3)
        assert "backward" not in results[rank]["mixed"]  # TorchRec's FP16 codec carried the gradients
