"""The notes' models in torch, as the notes define them: the references of the model tests.

Tudui: 000_dc5555055295abc4.txt; TorchMLP: 004_3b1cf40aed2d068d.txt; TorchRNN:
001_42dfbdd5dad21a82.txt; the regression net: 002_be92e9498db7b7c3.txt; softmax
regression: d2l, 003_e24e918ed2af1c93.txt.
"""

import torch
from torch import nn


class Tudui(nn.Module):
  """000_dc5555055295abc4.txt; ``fc_in`` is 1024 in the note (32x32 CIFAR-10)."""

  def __init__(self, in_channels=3, fc_in=1024):
    super().__init__()
    self.model1 = nn.Sequential(
      nn.Conv2d(in_channels, 32, 5, padding=2),
      nn.MaxPool2d(2),
      nn.Conv2d(32, 32, 5, padding=2),
      nn.MaxPool2d(2),
      nn.Conv2d(32, 64, 5, padding=2),
      nn.MaxPool2d(2),
      nn.Flatten(),
      nn.Linear(fc_in, 64),
      nn.Linear(64, 10),
    )

  def forward(self, x):
    return self.model1(x)


class TorchMLP(nn.Module):
  """004_3b1cf40aed2d068d.txt (sizes as arguments)."""

  def __init__(self, in_features=784, hidden=256):
    super().__init__()
    self.hidden = nn.Linear(in_features, hidden)
    self.act = nn.ReLU()
    self.output = nn.Linear(hidden, 10)

  def forward(self, x):
    return self.output(self.act(self.hidden(x.flatten(1))))


class TorchRNN(nn.Module):
  """001_42dfbdd5dad21a82.txt (device handling dropped)."""

  def __init__(self, input_size=28, hidden_size=128, num_classes=10):
    super().__init__()
    self.hidden_size = hidden_size
    self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)
    self.fc = nn.Linear(hidden_size, num_classes)

  def forward(self, x):
    h0 = torch.zeros(1, x.size(0), self.hidden_size)
    out, _ = self.rnn(x, h0)
    return self.fc(out[:, -1, :])


def torch_regression():
  return nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 1))  # 002_be92e9498db7b7c3.txt


def torch_softmax_regression():
  return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))  # d2l, 003_e24e918ed2af1c93.txt
