"""On DESIGN.md's payload our entropy coders reach the order-0 bound of the codes."""
import numpy as np
import pytest

import dlrmcomp
from dlrmcomp import codecs
from dlrmcomp.bench.payload import CRITEO_KAGGLE_ROWS, embedding_payload
from dlrmcomp.codecs.entropy import entropy_bits
from dlrmcomp.codecs.quantize import LinearQuantizer


@pytest.fixture(scope="module")
def tables():
    return embedding_payload(batch=8192, dim=64, n_tables=26, seed=1)


@pytest.mark.parametrize("name", ["quant+ans", "quant+huffman"])
def test_coders_reach_98_percent_of_order0_entropy(tables, name):
    frames = bits = 0
    for x in tables:
        eb_abs = dlrmcomp.ErrorBound(0.03).resolve(x)
        codes = LinearQuantizer().quantize(x, eb_abs).codes
        assert codes.dtype == np.int8
        bits += entropy_bits(codes)
        frames += len(codecs.get(name, eb=0.03).encode(x))
    assert bits / 8 / frames >= 0.98, f"{name}: {frames} bytes vs entropy {bits / 8:.0f}"


def test_dedup_beats_zstd_on_the_zipf_payload(tables):
    sizes = {name: sum(len(codecs.get(name, eb=0.03).encode(x)) for x in tables)
             for name in ("quant+dedup+ans", "quant+dedup+huffman", "quant+zstd", "quant+ans")}
    assert sizes["quant+dedup+ans"] < sizes["quant+zstd"] < sizes["quant+ans"]
    assert sizes["quant+dedup+huffman"] < sizes["quant+zstd"]
    assert len(CRITEO_KAGGLE_ROWS) == 26
