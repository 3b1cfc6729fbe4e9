"""``torch.optim`` as optax: optimizers, lr schedules, param groups, accumulation, loss scaling."""

from jaxtrain.optim._transforms import scale_by_torch_adagrad as scale_by_torch_adagrad
from jaxtrain.optim._transforms import scale_by_torch_adam as scale_by_torch_adam
from jaxtrain.optim._transforms import trace_with_dampening as trace_with_dampening
from jaxtrain.optim.accumulation import accumulate as accumulate
from jaxtrain.optim.groups import param_groups as param_groups
from jaxtrain.optim.loss_scaling import GradScalerState as GradScalerState
from jaxtrain.optim.loss_scaling import found_inf as found_inf
from jaxtrain.optim.loss_scaling import grad_scaler as grad_scaler
from jaxtrain.optim.loss_scaling import loss_scale as loss_scale
from jaxtrain.optim.optimizers import adagrad as adagrad
from jaxtrain.optim.optimizers import adam as adam
from jaxtrain.optim.optimizers import adamw as adamw
from jaxtrain.optim.optimizers import rmsprop as rmsprop
from jaxtrain.optim.optimizers import sgd as sgd
from jaxtrain.optim.schedules import cosine_annealing_lr as cosine_annealing_lr
from jaxtrain.optim.schedules import exponential_lr as exponential_lr
from jaxtrain.optim.schedules import multistep_lr as multistep_lr
from jaxtrain.optim.schedules import step_lr as step_lr
