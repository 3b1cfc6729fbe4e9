"""Every ``torch.nn`` loss as a pure JAX function, named as in ``torch.nn.functional``.

Values and gradients equal torch's to float32 tolerance (tested against torch
2.13.0). Hyper-parameters are keyword-only; ``reduction`` is ``'none'``,
``'mean'`` (default) or ``'sum'`` (and ``'batchmean'`` for ``kl_div``).
"""

from jaxtrain.losses.classification import (
  binary_cross_entropy,
  binary_cross_entropy_with_logits,
  cross_entropy,
  kl_div,
  multi_margin_loss,
  multilabel_margin_loss,
  multilabel_soft_margin_loss,
  nll_loss,
  soft_margin_loss,
)
from jaxtrain.losses.ranking import (
  cosine_embedding_loss,
  hinge_embedding_loss,
  margin_ranking_loss,
  pairwise_distance,
  triplet_margin_loss,
  triplet_margin_with_distance_loss,
)
from jaxtrain.losses.regression import (
  gaussian_nll_loss,
  huber_loss,
  l1_loss,
  mse_loss,
  poisson_nll_loss,
  smooth_l1_loss,
)
from jaxtrain.losses.sequence import ctc_loss
