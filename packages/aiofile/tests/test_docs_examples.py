"""Every Python example in the READMEs and docs/*.md runs, so none can rot.

Each fenced ```python block of README.md, packages/*/README.md and
docs/*.md runs as a script in a fresh temporary directory, in its own
interpreter (the installed caio and aiofile), and must exit with status 0.
Conventions, also described in docs/index.md:

- ``<!-- no-test -->`` on the line before a block (blank lines between are
  allowed) leaves it out: fragments, code for other libraries.
- A block followed by a line ``Output:`` and then a ```text block must print
  exactly that text.
- On a line that starts with ``print(``, a trailing comment names what the
  line prints: its text, or the part after its last ``": "``, must be in the
  block's output (``print(x)  # Hello``, ``print(y)  # at offset 2: b'cde'``).

The documents live in the repository, not in the installed packages: when
the suite runs from an sdist, they are not there and this module skips.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCUMENTS = sorted(
    path
    for path in [ROOT / "README.md", *ROOT.glob("packages/*/README.md"), *ROOT.glob("docs/*.md")]
    if path.is_file()
)
NO_TEST = "<!-- no-test -->"
TIMEOUT = 120

FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<info>[^`\s]*)")

# Both, so that an unrelated docs/ three levels up cannot be taken for ours.
IN_REPOSITORY = (ROOT / "docs" / "index.md").is_file() and (
    ROOT / "packages" / "aiofile" / "pyproject.toml"
).is_file()
DOCUMENTS = DOCUMENTS if IN_REPOSITORY else []

pytestmark = pytest.mark.skipif(
    not IN_REPOSITORY,
    reason=f"not run from a repository checkout (no docs/index.md and packages/aiofile "
    f"under {ROOT}, as in an sdist): no documents to check",
)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    end: int  # 1-based line of the closing fence
    info: str
    code: str
    skipped: bool
    output: str | None = None  # the ```text block after "Output:", if any

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, start = match["fence"], i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        before = [text.strip() for text in lines[:start] if text.strip()]
        blocks.append(Block(
            path=path, line=start + 1, end=i, info=match["info"].lower(),
            code="\n".join(body) + "\n", skipped=bool(before) and before[-1] == NO_TEST,
        ))
    return blocks


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of ``path``, each with its expected output."""
    blocks = parse_blocks(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    for index, block in enumerate(blocks):
        if block.info not in ("python", "py"):
            continue
        output = None
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if following is not None and following.info == "text":
            prose = [
                text.strip() for text in lines[block.end:following.line - 1] if text.strip()
            ]
            if prose == ["Output:"]:
                output = following.code
        found.append(Block(
            path=block.path, line=block.line, end=block.end, info=block.info, code=block.code,
            skipped=block.skipped, output=output,
        ))
    return found


def print_comments(code: str) -> list[str]:
    """What the ``print(...)  # text`` lines of ``code`` say they print."""
    starts = {
        number for number, text in enumerate(code.splitlines(), 1)
        if text.lstrip().startswith("print(")
    }
    expected = []
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.COMMENT and token.start[0] in starts:
            text = token.string[1:].strip()
            expected.append(text.rsplit(": ", 1)[-1])
    return expected


# Debug mode (-X dev) reports a loop step slower than 0.1 s: on a loaded
# machine that says nothing about the example.
SLOW_STEP = re.compile(r"^Executing <.*> took \d+\.\d+ seconds\n", re.MULTILINE)

ALL_BLOCKS = [block for path in DOCUMENTS for block in python_blocks(path)]


def test_documents_have_examples() -> None:
    # A broken parser that finds nothing would pass every other test here.
    names = {block.path.name for block in ALL_BLOCKS if not block.skipped}
    assert {"README.md", "getting-started.md", "migrating-from-aiofiles.md"} <= names
    assert any(block.output is not None for block in ALL_BLOCKS)


@pytest.mark.parametrize(
    "block", [b for b in ALL_BLOCKS if not b.skipped], ids=lambda b: b.name,
)
def test_example_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    work = tmp_path / "cwd"
    work.mkdir()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the installed packages, never the tree
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(script)],
        cwd=work, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False,
    )
    assert done.returncode == 0, (
        f"{block.name} failed (exit {done.returncode}):\n{done.stderr}"
    )
    stderr = SLOW_STEP.sub("", done.stderr)
    assert stderr == "", f"{block.name} wrote to stderr:\n{done.stderr}"
    if block.output is not None:
        assert done.stdout == block.output, f"{block.name} printed:\n{done.stdout}"
    for expected in print_comments(block.code):
        assert expected in done.stdout, (
            f"{block.name}: a comment says {expected!r} is printed; it printed:\n"
            f"{done.stdout}"
        )


def test_parser_conventions(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nprint(1)  # 1\n```\n\nOutput:\n\n```text\n1\n```\n\n"
        "<!-- no-test -->\n\n```python\nraise SystemExit(1)\n```\n\n"
        "```sh\necho no\n```\n\n```python\nx = 1\n```\n\nSome prose.\n\n```text\nx\n```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(page)
    assert [(b.line, b.skipped, b.output) for b in blocks] == [
        (1, False, "1\n"), (13, True, None), (21, False, None),
    ]
    assert print_comments(blocks[0].code) == ["1"]
    assert print_comments('print("a")  # nbytes, fd: b\'cde\'\nx = 2  # not a print\n') == [
        "b'cde'",
    ]
