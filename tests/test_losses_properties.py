"""Property tests of the losses with hypothesis: what the math says holds for every input.

- reduction consistency: ``sum == mean * n`` where the mean is over the n elements
  (torch's definition of 'mean' for unweighted losses without ignore_index);
- invariance: permuting the batch changes neither the mean nor the sum;
- non-negativity: every loss here is a distance or a negative log-probability;
- finite gradients for finite inputs (|x| <= 30, where torch's are finite too).

Few fixed shapes (``sampled_from``) and ``max_examples=25``: each example is a few
eager calls on tiny arrays, the file runs in seconds.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxtrain.losses as L

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
SHAPES = st.sampled_from([(4, 3), (8, 5)])
FINITE = st.floats(-30, 30, width=32, allow_nan=False, allow_infinity=False)


@st.composite
def logits_and_classes(draw):
  n, c = draw(SHAPES)
  logits = draw(hnp.arrays(np.float32, (n, c), elements=FINITE))
  target = draw(hnp.arrays(np.int32, (n,), elements=st.integers(0, c - 1)))
  return logits, target


@st.composite
def pairs(draw):
  shape = draw(SHAPES)
  return (
    draw(hnp.arrays(np.float32, shape, elements=FINITE)),
    draw(hnp.arrays(np.float32, shape, elements=FINITE)),
  )


@st.composite
def logits_and_probabilities(draw):
  x, _ = draw(pairs())
  y = draw(hnp.arrays(np.float32, x.shape, elements=st.floats(0, 1, width=32)))
  return x, y


# (name, loss(input, target, reduction)); each group shares a strategy of inputs.
CLASS_LOSSES = [
  ("cross_entropy", L.cross_entropy),
  ("nll_loss", lambda x, y, reduction: L.nll_loss(jax.nn.log_softmax(x), y, reduction=reduction)),
  ("multi_margin_loss", L.multi_margin_loss),
]
PAIR_LOSSES = [
  ("mse_loss", L.mse_loss),
  ("l1_loss", L.l1_loss),
  ("smooth_l1_loss", L.smooth_l1_loss),
  ("huber_loss", L.huber_loss),
  (
    "soft_margin_loss",
    lambda x, y, reduction: L.soft_margin_loss(x, jnp.sign(y) + (y == 0), reduction=reduction),
  ),
]
PROB_LOSSES = [
  ("binary_cross_entropy_with_logits", L.binary_cross_entropy_with_logits),
]


def _all(draw_losses):
  return [(name, fn, strategy) for losses, strategy in draw_losses for name, fn in losses]


ALL = _all(
  [
    (CLASS_LOSSES, logits_and_classes()),
    (PAIR_LOSSES, pairs()),
    (PROB_LOSSES, logits_and_probabilities()),
  ]
)


def _n(fn, x, y):
  # 'mean' divides by the number of per-element terms: what 'none' returns.
  return fn(x, y, reduction="none").size


PARAMS = dict(
  argnames="fn,strategy",
  argvalues=[(fn, strategy) for _, fn, strategy in ALL],
  ids=[name for name, _, _ in ALL],
)


@pytest.mark.parametrize(**PARAMS)
@SETTINGS
@given(data=st.data())
def test_sum_is_mean_times_n(fn, strategy, data):
  x, y = data.draw(strategy)
  total, mean = fn(x, y, reduction="sum"), fn(x, y, reduction="mean")
  np.testing.assert_allclose(total, mean * _n(fn, x, y), rtol=2e-5, atol=1e-4)


@pytest.mark.parametrize(**PARAMS)
@SETTINGS
@given(data=st.data())
def test_permuting_the_batch_changes_nothing(fn, strategy, data):
  x, y = data.draw(strategy)
  perm = np.asarray(data.draw(st.permutations(range(len(x)))))
  for reduction in ("mean", "sum"):
    np.testing.assert_allclose(
      fn(x[perm], y[perm], reduction=reduction), fn(x, y, reduction=reduction), rtol=2e-5, atol=1e-4
    )
  # 'none' permutes with the batch.
  np.testing.assert_allclose(
    fn(x[perm], y[perm], reduction="none"), np.asarray(fn(x, y, reduction="none"))[perm], rtol=1e-6
  )


@pytest.mark.parametrize(**PARAMS)
@SETTINGS
@given(data=st.data())
def test_non_negative(fn, strategy, data):
  x, y = data.draw(strategy)
  assert float(jnp.min(fn(x, y, reduction="none"))) >= 0.0


@pytest.mark.parametrize(**PARAMS)
@SETTINGS
@given(data=st.data())
def test_finite_gradients_for_finite_inputs(fn, strategy, data):
  x, y = data.draw(strategy)
  g = jax.grad(lambda x: fn(x, y, reduction="mean"))(jnp.asarray(x))
  assert bool(jnp.all(jnp.isfinite(g)))


@SETTINGS
@given(logits_and_classes(), st.integers(0, 2))
def test_ignore_index_is_the_mean_over_the_kept_targets(xy, ignored):
  # torch: with ignore_index, 'mean' divides by the number of targets not ignored.
  x, y = xy
  y = y.copy()
  y[: ignored + 1] = -100
  kept = y != -100
  mean = L.cross_entropy(x, y, reduction="mean", ignore_index=-100)
  np.testing.assert_allclose(
    mean, L.cross_entropy(x[kept], y[kept], reduction="mean"), rtol=2e-5, atol=1e-5
  )
  np.testing.assert_allclose(
    L.cross_entropy(x, y, reduction="sum", ignore_index=-100),
    mean * kept.sum(),
    rtol=2e-5,
    atol=1e-4,
  )
