"""jaxtrain.train's main, stopped at the point JAXTRAIN_KILL_HOOK names (tests/test_loop.py):
it writes JAXTRAIN_KILL_MARKER and sleeps, and the test SIGKILLs it there."""

import os
import sys
import time

import orbax.checkpoint as ocp

from jaxtrain import loop, reporting, train

kind, _, arg = os.environ["JAXTRAIN_KILL_HOOK"].partition(":")
marker = os.environ["JAXTRAIN_KILL_MARKER"]


def stop_here():
  with open(marker, "w") as f:
    f.write(str(os.getpid()))
  time.sleep(600)


if kind == "step":
  from jaxtrain import pipeline

  make = pipeline.make_gather_step  # the dataset on the (CPU) device: the default
  calls = [0]

  def make_gather_step(*a, **k):
    step = make(*a, **k)

    def counted(*args):
      out = step(*args)
      calls[0] += 1
      if calls[0] == int(arg):
        stop_here()
      return out

    return counted

  pipeline.make_gather_step = make_gather_step
elif kind in ("create", "item", "commit"):
  A = ocp.path.atomicity.AtomicRenameTemporaryPath
  method = "create" if kind == "create" else "finalize"
  original = getattr(A, method)
  suffix = {
    "create": f"/{arg}.orbax-checkpoint-tmp",
    "commit": f"/{arg}.orbax-checkpoint-tmp",
    "item": f"/{arg}.orbax-checkpoint-tmp/state.orbax-checkpoint-tmp",
  }[kind]

  async def hooked(self, *a, **k):
    if kind == "create":
      out = await original(self, *a, **k)
    if str(self.get()).endswith(suffix):
      stop_here()
    return out if kind == "create" else await original(self, *a, **k)

  setattr(A, method, hooked)
elif kind == "report":
  end_epoch = reporting.Reporter.end_epoch

  def hooked(self, result, **k):
    if result.epoch == int(arg):
      stop_here()
    return end_epoch(self, result, **k)

  reporting.Reporter.end_epoch = hooked
elif kind == "params":
  loop.save_params = lambda *a, **k: stop_here()
sys.exit(train.main(sys.argv[1:]))
