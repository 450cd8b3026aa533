"""Arrays derived from a weight (Winograd's U) are computed once per value of the weight:
reused while it is unchanged, recomputed after any change in place, dropped with it."""

import gc

import numpy as np
import pytest

import nnscratch.functional as readable
from nnscratch.functional.fast import conv as fast_conv
from nnscratch.functional.fast import weight_cache, winograd


def counting(calls):
    def compute(w):
        calls.append(1)
        return w * 2

    return compute


def test_computed_once_while_the_weight_is_unchanged(rng):
    w, calls = rng.standard_normal((4, 3, 3, 3)), []
    first = weight_cache.derived(w, "double", counting(calls))
    second = weight_cache.derived(w, "double", counting(calls))
    assert second is first and len(calls) == 1
    assert not first.flags.writeable
    weight_cache.derived(w, "another", counting(calls))  # another derived array of w
    assert len(calls) == 2


@pytest.mark.parametrize(
    "change",
    [
        lambda w: w.__setitem__((3, 2, 1, 0), w[3, 2, 1, 0] + 1e-12),  # one entry, barely
        lambda w: w.__isub__(0.1 * w),  # an optimizer step, in place
        lambda w: w.__setitem__(Ellipsis, np.roll(w, 1)),  # the same values, moved
    ],
)
def test_recomputed_after_a_change_in_place(change, rng):
    w, calls = rng.standard_normal((4, 3, 3, 3)), []
    weight_cache.derived(w, "double", counting(calls))
    change(w)
    value = weight_cache.derived(w, "double", counting(calls))
    assert len(calls) == 2
    np.testing.assert_array_equal(value, w * 2)


def test_an_entry_goes_away_with_its_weight(rng):
    before = len(weight_cache._entries)
    w = rng.standard_normal((4, 3, 3, 3))
    weight_cache.derived(w, "double", lambda w: w * 2)
    assert len(weight_cache._entries) == before + 1
    del w
    gc.collect()
    assert len(weight_cache._entries) == before


def test_winograd_transforms_a_weight_once_per_value(rng, monkeypatch):
    """Forward and backward of a step share U, repeated forwards reuse it, and a weight
    updated in place gives the convolution of the new weight (float64, exact)."""
    monkeypatch.setattr(fast_conv, "WINOGRAD_MIN_CHANNELS_SMALL_PLANE", 1)
    calls = []
    transform = winograd.transform_weight
    monkeypatch.setattr(winograd, "transform_weight", lambda w: calls.append(1) or transform(w))
    x, w = rng.standard_normal((2, 8, 6, 6)), rng.standard_normal((8, 8, 3, 3))
    y, cache = fast_conv.conv2d_forward(x, w, padding=1)
    fast_conv.conv2d_backward(rng.standard_normal(y.shape), cache)
    fast_conv.conv2d_forward(x, w, padding=1)
    assert len(calls) == 1
    w -= 0.01 * rng.standard_normal(w.shape)  # an optimizer step
    y, _ = fast_conv.conv2d_forward(x, w, padding=1)
    assert len(calls) == 2
    np.testing.assert_allclose(y, readable.conv2d_forward(x, w, padding=1)[0], atol=1e-12)
