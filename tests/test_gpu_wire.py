"""The wire format on a GPU (DeviceWire): the same bytes as the CPU stages, bit-identical decodes
both ways, validation on the device (forged descriptors, truncated buffers, corrupt tables and lanes
raise CorruptStreamError after the sync and leave the device usable), and no host sync inside
encode or decode. Skipped cleanly without cupy or a CUDA device."""
from __future__ import annotations

import numpy as np
import pytest

import dlrmcomp
from dlrmcomp import codecs
from dlrmcomp.exchange import wire

from common import check_error_bound

pytestmark = pytest.mark.gpu
cp = pytest.importorskip("cupy")
if not codecs.gpu.gpu_available():  # pragma: no cover - CPU CI
    pytest.skip("no CUDA device", allow_module_level=True)
torch = pytest.importorskip("torch")

from dlrmcomp.exchange.device import DeviceWire  # noqa: E402


def _slices(seed=0, dtype=np.float32):
    from dlrmcomp.bench.payload import embedding_payload

    rng = np.random.default_rng(seed)
    xs = [x.astype(dtype) for x in embedding_payload(batch=5000, dim=32, n_tables=3, seed=seed, row_cap=3000)]
    special = rng.normal(0, 1, (300, 16)).astype(dtype)
    special[1, 1], special[2, 2], special[3, 3] = np.nan, np.inf, -np.inf
    tiny = rng.normal(0, 1, (1, 8)).astype(dtype)
    const = np.full((64, 4), 0.25, dtype)
    many = rng.normal(0, 1, (40000, 8)).astype(dtype)  # escapes spread over many segments
    many[rng.integers(0, 40000, 300), rng.integers(0, 8, 300)] = np.nan
    many[rng.integers(0, 40000, 20), 3] = -np.inf
    return xs + [special, tiny, const, many]


def _encode(w, xs, bounds):
    enc = w.encode([torch.from_numpy(x).cuda() for x in xs], bounds)
    lengths = enc.lengths.get()
    return enc.buffer[:int(lengths.sum())], lengths


def _decode(w, buf, lengths, xs, dtype=torch.float32):
    outs = [torch.empty(x.shape, device="cuda", dtype=dtype) for x in xs]
    w.decode(buf, lengths, [x.shape for x in xs], outs, dtype=np.dtype(str(dtype).replace("torch.", ""))).check()
    return [o.cpu().numpy() for o in outs]


@pytest.mark.parametrize("lanes,chunk,states", [(32, 1 << 18, 1), (128, 1 << 16, 1), (4, 64, 1), (128, 1 << 16, 4)])
def test_device_bytes_equal_cpu_bytes_int8(lanes, chunk, states):
    xs = _slices(1)
    bounds = [0.03, 0.01, 0.05, 0.02, 0.03, 0.04, 0.03]
    w = DeviceWire(lanes=lanes, chunk=chunk, states=states)
    buf, lengths = _encode(w, xs, bounds)
    assert _decode(w, buf, lengths, xs)[0].shape == xs[0].shape
    cpu, cpu_lengths = wire.encode_slices(xs, bounds, lanes=lanes, chunk=chunk)
    assert list(lengths) == cpu_lengths
    assert buf.cpu().numpy().tobytes() == cpu  # byte for byte, descriptor included


@pytest.mark.parametrize("dtype,bounds", [(np.float32, [0.001] * 7), (np.float64, [0.03] * 7), (np.float32, [0.0004] * 7)])
def test_decodes_agree_both_ways(dtype, bounds):
    xs = _slices(2, dtype)
    w = DeviceWire()
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    buf, lengths = _encode(w, xs, bounds)
    gpu = _decode(w, buf, lengths, xs, tdt)
    cpu = wire.decode_slices(buf.cpu().numpy(), lengths, [x.shape for x in xs])
    for x, g, c, view in zip(xs, gpu, cpu, wire.split(buf.cpu().numpy(), lengths)):
        assert g.tobytes() == c.tobytes()
        check_error_bound(x, g, wire.Descriptor.unpack(view).eb_abs)
    # and the CPU's bytes (int16 there may use the whole-symbol layout) decode on the device the same
    cpu_buf, cpu_lengths = wire.encode_slices(xs, bounds, lanes=128, chunk=1 << 16)
    gpu2 = _decode(w, torch.frombuffer(bytearray(cpu_buf), dtype=torch.uint8).cuda(), cpu_lengths, xs, tdt)
    for g, c in zip(gpu2, wire.decode_slices(cpu_buf, cpu_lengths, [x.shape for x in xs])):
        assert g.tobytes() == c.tobytes()


def test_forged_and_truncated_input_raise_and_the_device_stays_usable():
    xs = _slices(3)
    w = DeviceWire()
    buf, lengths = _encode(w, xs, [0.03] * len(xs))
    good = buf.cpu().numpy()
    rng = np.random.default_rng(0)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    raised = 0
    for i in range(120):
        bad = good.copy()
        lens = lengths.copy()
        kind = i % 6
        t = int(rng.integers(0, len(xs) - 1))  # a slice with a coded stream
        if kind == 0:  # descriptor byte
            bad[offsets[t] + int(rng.integers(0, wire.DESCRIPTOR_SIZE))] ^= int(rng.integers(1, 256))
        elif kind == 1:  # stream header byte
            bad[offsets[t] + wire.DESCRIPTOR_SIZE + int(rng.integers(0, 23))] ^= int(rng.integers(1, 256))
        elif kind == 2:  # a length that runs past the buffer
            lens[-1] += 16 * int(rng.integers(1, 1000))
        elif kind == 3:  # truncated buffer
            bad = bad[:int(rng.integers(0, bad.size - 16))]
        elif kind == 4:  # a forged descriptor with a valid checksum claiming a huge stream
            d = wire.Descriptor.unpack(good[offsets[t]:offsets[t] + lengths[t]].tobytes())
            forged = wire.Descriptor(**{**d.__dict__, "stream_len": int(rng.integers(1 << 20, 1 << 31))}).pack()
            bad[offsets[t]:offsets[t] + wire.DESCRIPTOR_SIZE] = np.frombuffer(forged, np.uint8)
        else:  # anywhere in the slice body (tables, lane ends, lane data)
            bad[offsets[t] + wire.DESCRIPTOR_SIZE + 23 + int(rng.integers(0, lengths[t] - wire.DESCRIPTOR_SIZE - 23))] ^= 0xFF
        outs = [torch.empty(x.shape, device="cuda") for x in xs]
        try:
            w.decode(torch.from_numpy(bad).cuda(), lens, [x.shape for x in xs], outs).check()
        except dlrmcomp.CorruptStreamError:
            raised += 1
            continue
        assert kind == 5, f"forgery kind {kind} was not caught"
    assert raised >= 100
    torch.cuda.synchronize()  # no device fault
    for x, y in zip(xs, _decode(w, buf, lengths, xs)):  # a good buffer still decodes
        assert y.shape == x.shape


def test_encode_and_decode_make_no_host_sync():
    xs = [torch.from_numpy(x).cuda() for x in _slices(4)]
    w = DeviceWire()
    w.encode(xs, [0.03] * len(xs))  # first call: compile, allocate
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        enc = w.encode(xs, [0.03] * len(xs))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    lengths = enc.lengths.get()
    outs = [torch.empty(x.shape, device="cuda") for x in xs]
    w.decode(enc.buffer, lengths, [tuple(x.shape) for x in xs], outs).check()
    torch.cuda.set_sync_debug_mode("error")
    try:
        res = w.decode(enc.buffer, lengths, [tuple(x.shape) for x in xs], outs)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    res.check()


def test_wire_codec_exchange_in_one_process_matches_cpu():
    """WireCodec.encode_many / decode_many on CUDA tensors == the CPU path's arrays."""
    from dlrmcomp.dist.comms import WireCodec
    from dlrmcomp.errorbound import EBSchedule

    xs = _slices(5)[:3]  # one dim, as the all-to-all's slices
    tables = [0, 1, 2]
    codec = WireCodec("gpu:quant+ans", EBSchedule.fixed(0.03))
    buf, lengths = codec.encode_many([torch.from_numpy(x).cuda() for x in xs], tables, 10)
    lens = lengths.cpu().tolist()
    got = codec.decode_many(buf[:sum(lens)], lens, [x.shape[0] for x in xs], xs[0].shape[1], tables)
    codec.check()
    cpu = WireCodec("quant+ans", EBSchedule.fixed(0.03))
    cbuf, clens = cpu.encode_many([torch.from_numpy(x) for x in xs], tables, 10)
    ref = cpu.decode_many(cbuf, clens.tolist(), [x.shape[0] for x in xs], xs[0].shape[1], tables)
    for g, r in zip(got, ref):
        assert torch.equal(g.cpu(), r)
