"""jaxtrain.config: every option declared once; defaults, TOML keys, validation and choices."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from jaxtrain import choices, train
from jaxtrain.config import Config

TORCH_OPTIMIZERS = {
  "sgd": torch.optim.SGD,
  "adam": torch.optim.Adam,
  "adamw": torch.optim.AdamW,
  "rmsprop": torch.optim.RMSprop,
  "adagrad": torch.optim.Adagrad,
}


@pytest.mark.parametrize("name", sorted(TORCH_OPTIMIZERS))
def test_each_optimizer_defaults_to_torchs(name):
  # torch 2.13.0's constructor defaults, read from its signature; SGD's lr and momentum
  # are the main job's recipe (SGD(lr=0.05, momentum=0.9)), documented as such.
  torch_defaults = inspect.signature(TORCH_OPTIMIZERS[name].__init__).parameters
  config = Config(optimizer=name).resolved()
  recipe = choices.SGD_RECIPE if name == "sgd" else {}
  taken = choices.OPTIMIZERS[name].options
  assert taken  # the options this optimizer takes, by name
  for option in taken:
    expected = recipe.get(option, torch_defaults[option].default)
    assert getattr(config, option) == expected, (name, option)


def test_adamw_is_not_adam():
  # The CLI's --optimizer adamw decays decoupled weights by torch's 1e-2 by default.
  adamw, _ = train.config_from_args(["--optimizer", "adamw", "--out", "x"])
  assert adamw.resolved().weight_decay == 0.01
  assert Config(optimizer="adam").resolved().weight_decay == 0.0


@pytest.mark.parametrize(
  "argv,fragment",
  [
    (
      ["--betas", "0.8", "0.9"],
      "--betas applies to --optimizer adam, adamw, not to this run's --optimizer sgd",
    ),
    (
      ["--optimizer", "adam", "--momentum", "0.5"],
      "--momentum applies to --optimizer sgd, rmsprop, not to this run's --optimizer adam",
    ),
    (
      ["--milestones", "3", "6"],
      "--milestones applies to --schedule multistep, not to this run's --schedule step",
    ),
    (
      ["--schedule", "none", "--gamma", "0.5"],
      "--gamma applies to --schedule step, multistep, exponential",
    ),
  ],
)
def test_an_option_the_choice_does_not_take_is_an_error(argv, fragment, capsys, tmp_path):
  assert train.main(argv + ["--out", str(tmp_path / "run")]) == 2
  err = capsys.readouterr().err
  assert fragment in err and err.count("\n") == 1


def test_toml_keys_are_the_flags_names(tmp_path):
  path = tmp_path / "run.toml"
  path.write_text(
    'out = "runs/a"\nbatch-size = 32\neval-batch-size = 100\nt-max = 7\nschedule = "cosine"\n'
  )
  config, _ = train.config_from_args(["--config", str(path)])
  assert (config.out_dir, config.batch_size, config.eval_batch_size, config.t_max) == (
    "runs/a",
    32,
    100,
    7,
  )
  # Files written for older versions, with the fields' names, still load.
  old = tmp_path / "old.toml"
  old.write_text('out_dir = "runs/b"\nbatch_size = 16\n')
  config, _ = train.config_from_args(["--config", str(old)])
  assert (config.out_dir, config.batch_size) == ("runs/b", 16)


def test_every_option_is_a_flag_a_key_and_checked():
  # One declaration per option: each Config field has a flag and a TOML key of the same
  # name, and a wrong type is refused naming it.
  parser = train.parser()
  flags = {a.dest: a.option_strings for a in parser._actions}
  for field in dataclasses.fields(Config):
    flag = "--out" if field.name == "out_dir" else "--" + field.name.replace("_", "-")
    assert flags[field.name] == [flag]
    key = flag[2:]
    with pytest.raises((TypeError, ValueError), match=field.name):
      Config.from_mapping({key: object()}, source="test")


def test_unknown_names_list_the_choices():
  for field, registry in (
    ("model", choices.MODELS),
    ("loss", choices.LOSSES),
    ("optimizer", choices.OPTIMIZERS),
    ("schedule", choices.SCHEDULES),
  ):
    with pytest.raises(
      ValueError, match=f"{field}='nope' is not valid; expected one of {', '.join(registry)}"
    ):
      dataclasses.replace(Config(), **{field: "nope"}).resolved().validate()


def test_fit_validates_the_config_naming_the_field():
  # Config used from python (notebooks), without the CLI.
  from jaxtrain import loop

  with pytest.raises(
    ValueError, match="nan_policy='never' is not valid; expected one of stop, skip"
  ):
    loop.fit(Config(nan_policy="never"))
