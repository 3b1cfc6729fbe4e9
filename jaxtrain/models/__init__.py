"""The notes' models in Flax NNX, layer for layer as their torch definitions.

Channels-last images ``(N, H, W, C)``; ``model(x)`` returns logits. Parameter
counts and default initialisation match torch's (tested against torch 2.13.0).
"""

from jaxtrain.models._util import count_params
from jaxtrain.models.cnn import CNN, Conv2d
from jaxtrain.models.linear import RegressionNet, SoftmaxRegression
from jaxtrain.models.mlp import MLP
from jaxtrain.models.rnn import RNNClassifier
