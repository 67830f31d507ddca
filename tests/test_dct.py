"""DCT+Chop (seed 002): the seed's grown-matrix form, the blockwise and host forms, the fold,
sfactor and padding; the ``dct`` and ``dct+quant`` codecs: config, frames, damage, the bound.
``dct+quant`` is also in test_codecs.LOSSY: every lossy codec's checks, the real fields included."""
import json

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import dlrmcomp
from dlrmcomp import codecs
from dlrmcomp.bench.fields import scifloat_fields
from dlrmcomp.codecs.dct import DctChop, dct_basis, fold_index, grown_lhs, host_chop, inverse_reproducible

from common import (check_backwards_compatibility, check_config, check_corruption, check_encode_decode,
                    check_error_bound, check_tampered_payload)


def images(shape=(3, 2, 100, 76), seed=0, dtype=torch.float64):
    return torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, shape)).to(dtype)


# -- the seed, line for line (compressor/dct_funcs.py + compress_entry.py), as the reference ----------
def seed_lhs_rhs(pix, cf):
    t = np.zeros((8, 8))
    for i in range(8):
        for j in range(8):
            t[i, j] = 1 / np.sqrt(8) if i == 0 else np.sqrt(2 / 8) * np.cos(((2 * j + 1) * i * np.pi) / (2 * 8))
    grown, mask = np.zeros((pix, pix)), np.zeros((cf * pix // 8, pix))
    for i in range(pix // 8):
        grown[i * 8:(i + 1) * 8, i * 8:(i + 1) * 8] = t
        mask[i * cf:(i + 1) * cf, i * 8:i * 8 + cf] = np.identity(cf)
    return np.matmul(mask, grown), np.matmul(grown.T, mask.T)


def seed_compress(a, cf):
    lhs, rhs = (torch.as_tensor(m).to(torch.float32) for m in seed_lhs_rhs(a.shape[-1], cf))
    return torch.add(torch.matmul(lhs, torch.matmul(torch.subtract(a, 128), rhs)), 0.5).to(torch.int32).to(torch.bfloat16)


def seed_decompress(c, cf, pix):
    rhs, lhs = (torch.from_numpy(m).to(torch.bfloat16) for m in seed_lhs_rhs(pix, cf))  # decompress: transposes
    return torch.add(torch.matmul(lhs, torch.matmul(c, rhs)), 128).to(torch.bfloat16)


@pytest.mark.parametrize("cf", [1, 2, 4, 7])
def test_grown_form_is_the_seeds_compressor_bit_for_bit(cf):
    a = images((4, 64, 64), seed=cf, dtype=torch.float32)  # the seed takes square images, 0..255, offset 128
    chop = DctChop(cf=cf, form="grown", rounding="seed", dtype="bfloat16")
    ours = chop.compress(a[:, None], 128.0, 1.0)
    assert torch.equal(ours.coeffs[:, 0], seed_compress(a, cf))
    assert torch.equal(chop.decompress(ours, torch.bfloat16)[:, 0], seed_decompress(ours.coeffs[:, 0], cf, 64))


def test_basis_is_orthonormal_and_grown_matrices_are_m_times_d():
    t = dct_basis()
    assert np.allclose(t @ t.T, np.eye(8), atol=1e-15)
    lhs, rhs = seed_lhs_rhs(48, 3)
    assert np.array_equal(grown_lhs(48, 3), lhs) and np.array_equal(grown_lhs(48, 3).T, rhs)


@pytest.mark.parametrize("cf", [1, 3, 4, 8])
@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("sfactor", [1, 2])
def test_reference_fast_and_host_forms_agree(cf, fold, sfactor):
    x = images()
    forms = [DctChop(cf=cf, fold=fold, sfactor=sfactor, form=f, rounding="none") for f in ("grown", "blockwise")]
    (cg, cb) = (f.compress(x, 127.5, 0.5) for f in forms)  # any offset and scale
    assert cg.coeffs.shape == cb.coeffs.shape == forms[0].coeff_shape(tuple(x.shape))
    assert torch.allclose(cg.coeffs.double(), cb.coeffs.double(), rtol=0, atol=1e-4)  # fp32 coefficients
    assert torch.allclose(forms[0].decompress(cg, torch.float64), forms[1].decompress(cb, torch.float64), rtol=0, atol=1e-3)
    rounded = DctChop(cf=cf, fold=fold, sfactor=sfactor)
    host, offset, scale = host_chop(rounded, x.numpy().reshape(6, 100, 76))  # what frames are written with
    device = rounded.compress(x.reshape(6, 1, 100, 76), offset, scale).coeffs.double().numpy()
    assert np.array_equal(host.astype(np.float32), device)


@pytest.mark.parametrize("form", ["grown", "blockwise"])
@pytest.mark.parametrize("shape", [(2, 1, 64, 64), (1, 3, 13, 21), (2, 2, 1, 9)])
def test_cf8_round_trip_is_exact_up_to_float_error(form, shape):
    x = images(shape)
    for sfactor in (1, 2):
        chop = DctChop(cf=8, form=form, sfactor=sfactor, rounding="none")
        y = chop.decompress(chop.compress(x), torch.float64)
        assert y.shape == x.shape and float((y - x).abs().max()) < 1e-4  # coefficients kept as fp32 (of 0..255)
    c = DctChop(cf=8)  # integer coefficients of the range on 255 steps: error <= half a step per coefficient
    assert float((c.decompress(c.compress(x), torch.float64) - x).abs().max()) < 8 * 0.5


def test_padding_to_multiples_of_8_is_recorded():
    x = images((2, 3, 13, 21))
    for sfactor, padded in ((1, (16, 24)), (2, (16, 32)), (3, (24, 24))):
        chop = DctChop(cf=4, sfactor=sfactor)
        c = chop.compress(x)
        assert c.shape == (2, 3, 13, 21) and c.padded == padded
        assert tuple(c.coeffs.shape) == (2, 3, padded[0] // 2, padded[1] // 2)
        assert chop.decompress(c).shape == x.shape


@pytest.mark.parametrize("cf", range(1, 9))
def test_fold_keeps_the_upper_left_triangle(cf):
    x = images((2, 1, 24, 32))
    full, folded = DctChop(cf=cf), DctChop(cf=cf, fold=True)
    a, b = full.compress(x, 128.0, 1.0), folded.compress(x, 128.0, 1.0)
    assert b.coeffs.shape == (2, 1, 3 * 4, cf * (cf + 1) // 2) and folded.kept == cf * (cf + 1) // 2
    corner = a.coeffs.view(2, 1, 3, cf, 4, cf).permute(0, 1, 2, 4, 3, 5).reshape(2, 1, 12, cf * cf)
    assert torch.equal(b.coeffs, corner[..., torch.from_numpy(fold_index(cf))])
    k, w = np.divmod(fold_index(cf), cf)
    assert (k + w < cf).all() and len(set(zip(k, w))) == cf * (cf + 1) // 2
    masked = corner.clone()
    drop = torch.ones(cf * cf, dtype=torch.bool)
    drop[torch.from_numpy(fold_index(cf))] = False
    masked[..., drop] = 0  # the scatter restores zeros there
    a_masked = type(a)(masked.view(2, 1, 3, 4, cf, cf).permute(0, 1, 2, 4, 3, 5).reshape(a.coeffs.shape),
                       a.shape, a.padded, a.offset, a.scale)
    assert torch.allclose(folded.decompress(b), full.decompress(a_masked))


def test_seed_rounding_truncates_negative_coefficients():
    x = images((1, 1, 16, 16))
    raw = DctChop(cf=8, rounding="none").compress(x, 128.0, 1.0).coeffs.double()
    nearest = DctChop(cf=8).compress(x, 128.0, 1.0).coeffs.double()
    seed = DctChop(cf=8, rounding="seed").compress(x, 128.0, 1.0).coeffs.double()
    assert torch.equal(nearest, torch.round(raw)) and torch.equal(seed, torch.trunc(raw + 0.5))
    negative = (raw < 0) & (torch.frac(raw).abs() > 0.5)
    assert negative.any() and bool((seed[negative] == nearest[negative] + 1).all())  # off by one below -0.5


def test_ratio_and_dtypes():
    assert DctChop(cf=4).ratio() == 4 and DctChop(cf=4, dtype="bfloat16").ratio() == 8
    assert DctChop(cf=4, fold=True).ratio() == pytest.approx(6.4)
    x = images((2, 1, 32, 32), dtype=torch.bfloat16)
    c = DctChop(cf=4, dtype="bfloat16").compress(x, 128.0, 1.0)
    assert c.coeffs.dtype == torch.bfloat16 and DctChop(cf=4).decompress(c, torch.bfloat16).dtype == torch.bfloat16


def test_reproducible_inverse_matches_the_device_form():
    x = images((2, 1, 40, 48))
    chop = DctChop(cf=5, rounding="none")
    c = chop.compress(x, 100.0, 0.75)
    ours = inverse_reproducible(c.coeffs.double().numpy().reshape(2, 25, 30), 5, 0.75, 100.0)
    assert np.abs(ours - chop.decompress(c, torch.float64).numpy().reshape(2, 40, 48)).max() < 1e-9


@pytest.mark.parametrize("bad", [dict(cf=0), dict(cf=9), dict(cf=2.5), dict(sfactor=0), dict(fold="yes"),
                                 dict(form="sparse"), dict(rounding="floor"), dict(dtype="float16")])
def test_bad_parameters_are_clear(bad):
    with pytest.raises(ValueError):
        DctChop(**bad)
    if set(bad) <= {"cf", "fold", "sfactor", "dtype"}:
        with pytest.raises(ValueError):
            codecs.get("dct", **bad)
    with pytest.raises(ValueError, match="lossy recipe"):
        codecs.get("dct+quant", eb=0.01, residual="zstd")
    with pytest.raises(ValueError, match="error bound"):
        codecs.get("dct+quant")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    x = images((4, 1, 96, 80), dtype=torch.float32)
    for form in ("grown", "blockwise"):
        chop = DctChop(cf=4, form=form, rounding="none")
        cpu, gpu = chop.compress(x, 128.0, 1.0), chop.compress(x.cuda(), 128.0, 1.0)
        assert torch.allclose(cpu.coeffs, gpu.coeffs.cpu(), atol=1e-3)
        assert torch.allclose(chop.decompress(cpu), chop.decompress(gpu).cpu(), atol=1e-3)


# -- codecs ------------------------------------------------------------------------------------------
CONFIGS = [("dct", {}), ("dct", dict(cf=2, fold=True)), ("dct", dict(cf=6, dtype="bfloat16", sfactor=2)),
           ("dct+quant", dict(eb=0.01)), ("dct+quant", dict(eb=1e-4, mode="abs", cf=4, fold=True, residual="quant+zstd"))]


def arrays():
    rng = np.random.default_rng(3)
    y, x = np.meshgrid(np.linspace(0, 6, 37), np.linspace(0, 9, 45), indexing="ij")
    smooth = (np.sin(x) * np.cos(y) + 0.05 * rng.normal(size=x.shape)).astype(np.float32)
    special = rng.normal(size=(3, 10, 9)).astype(np.float32)
    special[0, 1, 2], special[1, 3, 3], special[2, 9, 8] = np.nan, np.inf, -np.inf
    return [smooth, special, rng.normal(1e3, 1.0, (2, 2, 16, 24)), np.full((5, 7), 2.5, np.float32),
            np.linspace(-1, 1, 50), np.array(1.25)]


@pytest.mark.parametrize("name,params", CONFIGS)
def test_round_trip_config_and_fixtures(name, params):
    codec = codecs.get(name, **params)
    check_config(codec)
    for x in arrays() + [np.zeros((0, 4), np.float32)]:
        check_encode_decode(x, codec)  # dct: non-finite values exact; dct+quant: 0 violations
    check_backwards_compatibility(f"{name}_{CONFIGS.index((name, params))}", arrays()[:3], codec)


@pytest.mark.parametrize("name,params", CONFIGS)
def test_corruption_always_detected(name, params):
    rng = np.random.default_rng(11)
    frame = codecs.get(name, **params).encode(arrays()[0])
    check_corruption(frame, rng, n=400)
    check_tampered_payload(frame, rng, n=100)


def test_dct_frame_records_what_it_achieved(tmp_path, capsys):
    x = arrays()[0]
    frame = codecs.get("dct", cf=3).encode(x)
    header = codecs.read_header(frame)
    report = dlrmcomp.verify(x, dlrmcomp.decompress(frame))
    assert header.eb_abs is None and header.stats == {"max_abs_err": report["max_abs_err"], "psnr": report["psnr"]}
    assert x.nbytes / len(frame) > 4  # 64/9 in the payload; the header weighs on 1665 values
    np.save(tmp_path / "x.npy", x)
    from dlrmcomp.cli import main

    assert main(["compress", str(tmp_path / "x.npy"), str(tmp_path / "x.frame"), "--codec", "dct"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "x.frame")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["achieved"]["psnr"] > 20 and info["codec"]["id"] == "dct"
    assert codecs.read_header(codecs.get("quant+ans", eb=0.1).encode(x)).stats is None  # bounded codecs: the bound


def test_dct_frame_is_the_seed_representation():
    """The payload is the coefficients as the seed keeps them: cf^2 (or cf(cf+1)/2) a block, fp32 or bf16."""
    from dlrmcomp.codecs import frame as framing

    x = np.random.default_rng(0).uniform(0, 1, (4, 64, 64)).astype(np.float32)
    for cf, fold, dtype, values in ((4, False, "float32", 16), (4, True, "float32", 10), (2, False, "bfloat16", 4)):
        _, payload = framing.unpack(codecs.get("dct", cf=cf, fold=fold, dtype=dtype).encode(x))
        stream, index, _ = framing.split_sections(payload[1:])  # kind byte, then the escape layout of floats.py
        _, coefficients = framing.split_sections(stream)
        assert len(coefficients) == 4 * 64 * values * (2 if dtype == "bfloat16" else 4) and len(index) == 0


def image_arrays():
    dims = st.integers(1, 3)
    elements = st.one_of(st.floats(-1e6, 1e6, width=32), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e-30]))
    return dims.flatmap(lambda d: hnp.arrays(st.sampled_from([np.float32, np.float64]),
                                             hnp.array_shapes(min_dims=d, max_dims=d, min_side=1, max_side=20),
                                             elements=elements))


@given(x=image_arrays(), eb=st.floats(1e-6, 0.5), mode=st.sampled_from(["rel", "abs"]), cf=st.integers(1, 8),
       fold=st.booleans())
def test_dct_quant_bound_holds_on_any_array(x, eb, mode, cf, fold):
    frame = codecs.get("dct+quant", eb=eb, mode=mode, cf=cf, fold=fold).encode(x)
    check_error_bound(x, dlrmcomp.decompress(frame), codecs.read_header(frame).eb_abs)


def test_dct_quant_beats_plain_quantization_on_a_smooth_field():
    fields = scifloat_fields()
    x = np.asarray(fields["sperr_pressur_384x384.d64"]) if fields else arrays()[0]
    ours = len(codecs.get("dct+quant", eb=1e-3).encode(x))
    assert ours < len(codecs.get("quant+ans", eb=1e-3).encode(x))
