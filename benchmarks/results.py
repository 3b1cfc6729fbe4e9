"""What every benchmark script shares: the machine line, the load check, RESULTS.md.

Imports neither jax nor torch at the top: ``bench_train`` and ``bench_scaling``
call these from a parent process that must not start a framework before its
children run (``machine()`` imports both, so call it after them).
"""

from __future__ import annotations

import os
import platform
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def machine() -> str:
  """The machine and versions, for a results table's header (imports jax and torch)."""
  import jax
  import torch

  cpu = "unknown CPU"
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return (
    f"Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} ({jax.default_backend()} "
    f"backend); Python {platform.python_version()}, jax {jax.__version__}, "
    f"torch {torch.__version__}."
  )


def load_average() -> str:
  """The 1-minute load average, to judge whether the machine was quiet."""
  try:
    return f"{os.getloadavg()[0]:.2f}"
  except OSError:
    return "?"


def start_load() -> str:
  """The load average at the start of a run; warns on stderr when it is above half the
  core count."""
  load = load_average()
  if load != "?" and float(load) > (os.cpu_count() or 1) / 2:
    print(
      f"warning: load average {load} on {os.cpu_count()} cores: other work will slow both "
      "frameworks (torch's OpenMP threads the most); take the figures on a quiet machine",
      file=sys.stderr,
    )
  return load


def slower_summary(rows: list[dict], name: str, group: str) -> list[str]:
  """The lines under a ratio table (``ratio`` = torch / jaxtrain): how many rows jaxtrain
  wins, and which it loses, each as ``row[name] (row[group], ratio)``."""
  slower = [r for r in rows if r["ratio"] < 1]
  lines = ["", f"jaxtrain faster in {len(rows) - len(slower)} of {len(rows)} rows."]
  if slower:
    lines.append(
      "Slower than torch: "
      + ", ".join(f"{r[name]} ({r[group]}, {r['ratio']:.2f}x)" for r in slower)
      + "."
    )
  return lines


def write_results(section: str, header: str, path: str = RESULTS, after: str | None = None) -> None:
  """Replaces the section of RESULTS.md that starts with ``header``; a new one goes right
  after the section that starts with ``after`` when there is one, else at the end."""
  text = open(path).read() if os.path.exists(path) else "# Benchmark results\n\n"
  start = text.find(header)
  anchor = text.find(after) if after else -1
  section = section.rstrip("\n") + "\n"
  if start >= 0:
    end = text.find("\n## ", start + 1)
    text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
  elif anchor >= 0 and (end := text.find("\n## ", anchor + 1)) >= 0:
    text = text[:end].rstrip("\n") + "\n\n" + section + "\n" + text[end + 1 :]
  else:
    text = text.rstrip("\n") + "\n\n" + section
  with open(path, "w") as f:
    f.write(text)


def publish(section: str, header: str, write: bool, after: str | None = None) -> None:
  """Prints a benchmark's RESULTS.md section, and records it there when ``write`` (a new
  section right after the one headed ``after``, see :func:`write_results`)."""
  print()
  print(section)
  if write:
    write_results(section, header=header, after=after)
