"""The command-line tests' helpers: ``python -m jaxtrain.train`` in a fresh process."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*argv, timeout=300):
  """``python -m jaxtrain.train ARGV`` in a fresh process running this checkout."""
  return subprocess.run(
    [sys.executable, "-m", "jaxtrain.train", *argv],
    env={**os.environ, "PYTHONPATH": REPO},
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def one_line_error(proc, code):
  """Asserts that ``proc`` exited ``code`` with one line on stderr and no traceback; returns it."""
  assert proc.returncode == code, (proc.returncode, proc.stderr)
  assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
  return proc.stderr
