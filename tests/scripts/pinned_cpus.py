"""bench_losses.pin_cpus(1) in a fresh process (tests/test_benchmarks.py): prints the
allowed CPUs, torch's threads, whether XLA split an exp kernel, and pin_cpus' line;
argv[1]: the benchmarks folder."""

import os
import sys

sys.path.insert(0, sys.argv[1])
import bench_losses  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402

line = bench_losses.pin_cpus(1)
text = jax.jit(jnp.exp).lower(jnp.ones((1024, 100))).compile().as_text()
print(
  len(os.sched_getaffinity(0)),
  torch.get_num_threads(),
  'outer_dimension_partitions":["' in text,
  line,
)
