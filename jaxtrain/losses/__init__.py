"""Every ``torch.nn`` loss as a pure JAX function, named as in ``torch.nn.functional``.

Values and gradients equal torch's to float32 tolerance (tested against torch
2.13.0). Hyper-parameters are keyword-only; ``reduction`` is ``'none'``,
``'mean'`` (default) or ``'sum'`` (and ``'batchmean'`` for ``kl_div``).
"""

from jaxtrain.losses.classification import binary_cross_entropy
from jaxtrain.losses.classification import binary_cross_entropy_with_logits
from jaxtrain.losses.classification import cross_entropy
from jaxtrain.losses.classification import kl_div
from jaxtrain.losses.classification import multi_margin_loss
from jaxtrain.losses.classification import multilabel_margin_loss
from jaxtrain.losses.classification import multilabel_soft_margin_loss
from jaxtrain.losses.classification import nll_loss
from jaxtrain.losses.classification import soft_margin_loss
from jaxtrain.losses.ranking import cosine_embedding_loss
from jaxtrain.losses.ranking import hinge_embedding_loss
from jaxtrain.losses.ranking import margin_ranking_loss
from jaxtrain.losses.ranking import pairwise_distance
from jaxtrain.losses.ranking import triplet_margin_loss
from jaxtrain.losses.ranking import triplet_margin_with_distance_loss
from jaxtrain.losses.regression import gaussian_nll_loss
from jaxtrain.losses.regression import huber_loss
from jaxtrain.losses.regression import l1_loss
from jaxtrain.losses.regression import mse_loss
from jaxtrain.losses.regression import poisson_nll_loss
from jaxtrain.losses.regression import smooth_l1_loss
from jaxtrain.losses.sequence import ctc_loss
