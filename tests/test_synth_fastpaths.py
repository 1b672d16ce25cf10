"""The generator's speed-ups must give exactly what the plain constructions they replace give."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy.signal import lfilter

from obslab.ocsf.mapping import _const, _const_captions, _captions, _profiles
from obslab.synth._arrow_util import tile_strings
from obslab.synth.metrics import _ar1_many


@pytest.mark.parametrize("value,type_", [("Base Event", pa.string()), ("", pa.string()),
                                         ("réseau", pa.string()), (99, pa.int64()),
                                         (None, pa.int64()), (None, pa.string()),
                                         (False, pa.bool_())])
@pytest.mark.parametrize("n", [0, 1, 70, 5000])
def test_const_equals_naive_array(value, type_, n):
    got = _const(n, value, type_)
    got.validate(full=True)
    assert got.type == type_
    assert got.equals(pa.array([value] * n, type=type_))


def test_const_captions_equal_per_row_lookup():
    n = 300
    ids = [pa.array([x] * n, pa.int64()) for x in (0, 99, 1)]
    want = _captions(*ids, pa.nulls(n, pa.int64()))
    got = _const_captions(n, 0, 99, 1, None)
    assert set(got) == set(want)
    for k in want:
        assert got[k].cast(want[k].type).equals(want[k]), k


@pytest.mark.parametrize("valid", [None, [True, False, None, True], [False] * 4, []])
def test_profiles_equal_list_per_row(valid):
    n = 4 if valid is None else len(valid)
    lt = pa.list_(pa.string())
    want = pa.array([["trace"]] * n, type=lt)
    if valid is not None:
        want = pc.if_else(pa.array(valid, pa.bool_()), want, pa.nulls(n, lt))
    got = _profiles(n, None if valid is None else pa.array(valid, pa.bool_()))
    got.validate(full=True)
    assert got.equals(want)


def test_ar1_many_bit_identical_to_lfilter_of_the_same_draws():
    params = [(0.9, 0.07), (0.7, 3.0), (0.5, 0.5)]
    shape = (500, 7)
    got = _ar1_many(np.random.default_rng(5), shape, params)
    rng = np.random.default_rng(5)  # the draws, in the same order, filtered one by one
    for (phi, sd), g in zip(params, got):
        e = rng.normal(0.0, sd * np.sqrt(1 - phi * phi), shape)
        e[0] = rng.normal(0.0, sd, shape[1:])
        want = lfilter([1.0], [1.0, -phi], e, axis=0)
        assert g.flags.c_contiguous
        assert np.array_equal(g.view(np.int64), want.view(np.int64))


def test_tile_strings_cached_and_uncached_agree():
    block = ["a", "", "web-frontend-1", "é"]
    small = tile_strings(block, 3)
    assert small.to_pylist() == block * 3
    assert tile_strings(block, 3) is small  # cached: every chunk of a run tiles the same block
    big = tile_strings(block, 70_000)  # past the cache limit
    big.validate(full=True)
    assert big.to_pylist()[-4:] == block and len(big) == 280_000
