"""One process of a two-process run (tests/test_parallel.py): jaxtrain.train's main, with
JAXTRAIN_TEST_STOP and JAXTRAIN_TEST_PARAMS hooks; prints 'RESULT {json}'."""

import json
import os
import sys

from jaxtrain import loop, reporting, train

captured = {}
fit = loop.fit


def capturing_fit(*args, **kwargs):
  state, results = fit(*args, **kwargs)
  captured["state"] = state
  return state, results


loop.fit = capturing_fit
stop = int(os.environ.get("JAXTRAIN_TEST_STOP", "0"))
if stop:
  end_epoch = reporting.Reporter.end_epoch

  def interrupted(self, result, **kwargs):
    end_epoch(self, result, **kwargs)
    if result.epoch == stop:
      raise KeyboardInterrupt

  reporting.Reporter.end_epoch = interrupted
code = train.main(sys.argv[1:])
import jax  # noqa: E402  (after main: its distributed initialize comes first)

info = {
  "code": code,
  "process_index": jax.process_index(),
  "process_count": jax.process_count(),
  "device_count": jax.device_count(),
  "local_device_count": jax.local_device_count(),
}
if "state" in captured:
  loop.save_params(captured["state"], os.environ["JAXTRAIN_TEST_PARAMS"])
print("RESULT " + json.dumps(info), flush=True)
sys.exit(code)
