"""Runs documentation code blocks, each as written: its own globals, its own empty folder.

    python tests/scripts/run_blocks.py < blocks.json

Reads ``[{"name": ..., "code": ...}, ...]`` and prints one JSON line per block:
``{"name": ..., "error": null}`` or the traceback of its failure. The blocks share
this interpreter (its imports and compiled programs), which is what makes a page's
blocks cheap to run; nothing a block defines reaches the next one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import traceback

for block in json.load(sys.stdin):
  with tempfile.TemporaryDirectory() as folder:
    os.chdir(folder)
    output = io.StringIO()
    try:
      with contextlib.redirect_stdout(output):
        exec(compile(block["code"], block["name"], "exec"), {"__name__": "__main__"})
      error = None
    except BaseException:  # noqa: BLE001  (a block's failure, whatever it is, is reported)
      error = traceback.format_exc()
    os.chdir("/")
  print(json.dumps({"name": block["name"], "error": error}), flush=True)
