"""The documentation's code runs as written: every Python block of README.md and docs/*.md.

Convention (docs/testing.md): a ```python block is runnable, self-contained (its
imports and data are in the block), and runs with its own globals in an empty
working folder, with this checkout first on the path (all in one fresh
interpreter, tests/scripts/run_blocks.py). A block that cannot run as
written (it needs torchvision, a prepared tfds dataset, or names defined elsewhere)
is a fragment, marked by the line ``<!-- fragment -->`` right before its opening
fence; a fragment must still parse. Blocks in any other language (bash, text,
toml) are not run, and every fence names its language, so that Python cannot hide
in an unlabelled block.

Also checked here, because the README states them: the test command is byte for
byte the one CI runs (.ci/run), the README stays under 250 lines, and the relative
links of README.md and docs/ point at files and headings that exist.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENT = "<!-- fragment -->"
LANGUAGES = {"python", "bash", "text", "toml"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>\S*)[ \t]*$")


@dataclasses.dataclass(frozen=True)
class Block:
  page: pathlib.Path
  line: int  # 1-based line of the opening fence
  lang: str
  code: str
  fragment: bool

  @property
  def name(self) -> str:
    return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks(page: pathlib.Path) -> list[Block]:
  """The fenced code blocks of a Markdown page, their code dedented by the fence's indent."""
  lines = page.read_text(encoding="utf-8").splitlines()
  blocks, i = [], 0
  while i < len(lines):
    opening = FENCE.match(lines[i])
    if not opening:
      i += 1
      continue
    indent, start = opening["indent"], i
    i += 1
    while i < len(lines) and lines[i].strip() != "```":
      i += 1
    if i == len(lines):
      raise AssertionError(f"{page.relative_to(ROOT)}:{start + 1}: code block never closed")
    body = [
      line[len(indent) :] if line.startswith(indent) else line for line in lines[start + 1 : i]
    ]
    marked = start > 0 and lines[start - 1].strip() == FRAGMENT
    blocks.append(Block(page, start + 1, opening["lang"], "\n".join(body) + "\n", marked))
    i += 1
  return blocks


BLOCKS = [block for page in PAGES for block in _blocks(page)]
PYTHON = [block for block in BLOCKS if block.lang == "python"]
RUNNABLE = [block for block in PYTHON if not block.fragment]
FRAGMENTS = [block for block in PYTHON if block.fragment]


def test_the_pages_and_their_python_blocks_are_found():
  # Guards the parser: a fence it missed would be a block that is never run.
  assert (ROOT / "README.md") in PAGES and len(PAGES) > 1
  for page in PAGES:
    text = page.read_text(encoding="utf-8")
    found = [b for b in PYTHON if b.page == page]
    assert len(found) == len(re.findall(r"(?m)^[ \t]*```python[ \t]*$", text)), page
  assert len([b for b in RUNNABLE if b.page.name == "README.md"]) >= 3


def test_every_fence_names_a_known_language():
  bad = [f"{b.name} ({b.lang or 'no language'})" for b in BLOCKS if b.lang not in LANGUAGES]
  assert not bad, f"fences must name one of {sorted(LANGUAGES)}: {bad}"


def test_fragment_marks_precede_python_blocks():
  # A mark left before anything else (a bash block, text) marks nothing: a stale mark.
  for page in PAGES:
    lines = page.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
      if line.strip() == FRAGMENT:
        following = FENCE.match(lines[n + 1]) if n + 1 < len(lines) else None
        assert following and following["lang"] == "python", (
          f"{page.relative_to(ROOT)}:{n + 1}: {FRAGMENT} must be right before a ```python fence"
        )


@pytest.mark.parametrize("block", FRAGMENTS, ids=lambda b: b.name)
def test_fragments_parse(block):
  ast.parse(block.code, filename=block.name)


def test_python_blocks_run_as_written():
  # Each block with its own globals and its own empty working folder, all in one fresh
  # interpreter (tests/scripts/run_blocks.py) with this checkout first on the path, as
  # in a user's fresh shell: without XLA_FLAGS. Every failing block is reported.
  blocks = [{"name": b.name, "code": b.code} for b in RUNNABLE]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  proc = subprocess.run(
    [sys.executable, str(ROOT / "tests" / "scripts" / "run_blocks.py")],
    input=json.dumps(blocks),
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
  assert [r["name"] for r in results] == [b["name"] for b in blocks]
  failed = [
    f"{r['name']} does not run as written (mark it {FRAGMENT} if it cannot):\n{r['error'][-3000:]}"
    for r in results
    if r["error"]
  ]
  assert not failed, "\n".join(failed)


def test_the_test_command_is_the_one_ci_runs():
  command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
  readme = [b.code.strip() for b in BLOCKS if b.page.name == "README.md" and b.lang == "bash"]
  assert command in readme


def test_readme_is_under_250_lines():
  assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 250


def _anchors(page: pathlib.Path) -> set[str]:
  """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
  anchors = set()
  in_code = False
  for line in page.read_text(encoding="utf-8").splitlines():
    if FENCE.match(line) or line.strip() == "```":
      in_code = not in_code
    if in_code or not line.startswith("#"):
      continue
    title = line.lstrip("#").strip().lower()
    anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
  return anchors


def test_relative_links_point_at_existing_files_and_headings():
  broken = []
  for page in PAGES:
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
      if re.match(r"[a-z]+:", target):
        continue  # http:, https:, mailto:
      path, _, anchor = target.partition("#")
      file = (page.parent / path).resolve() if path else page
      if not file.exists():
        broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
      elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
        broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
  assert not broken, broken
