"""Every code example in the documentation runs (a renamed function breaks CI, not a reader).

Each page (``README.md`` and ``docs/**/*.md``) is one test: its fenced ``python`` blocks run in
order in one fresh namespace, as a reader would type them (later blocks use names from earlier
ones), in a temporary working directory, on one torch thread (the examples' DataLoader workers
share the cores). A failure names the page and the line of the block; the traceback's line
numbers are the page's own.

Blocks that are not meant to run are fenced with another language (``text``, ``bash``, ...).
A block that needs a package the ``test`` extra cannot install says so on the line before its
fence, ``<!-- docs-test: needs MODULE -->``; it runs wherever ``MODULE`` imports and is left out
(with the reason) elsewhere.
"""

from __future__ import annotations

import importlib.util
import re
import traceback
import warnings
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_NEEDS = re.compile(r"<!--\s*docs-test:\s*needs\s+(?P<module>[\w.]+)\s*-->")
# info strings that look like Python but would not run: a typo, not a choice
_PYTHON_LIKE = {"py", "python3", "py3"}


class Block(NamedTuple):
    """One fenced block of a page."""

    language: str
    line: int  # 1-based line of the opening fence
    code: str  # dedented by the fence's indentation
    needs: str | None  # a module the block needs (the marker before the fence)


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown page, in order (nested fences are not supported)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        info = match["info"].strip()
        language = info.split()[0].strip("{}.").lower() if info else ""
        previous = lines[i - 1] if i else ""
        needs = _NEEDS.search(previous)
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence):
                if not close["info"].strip():
                    break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        else:
            raise AssertionError(f"unclosed code fence at line {i + 1}")
        blocks.append(Block(language, i + 1, "\n".join(body) + "\n", needs and needs["module"]))
        i = j + 1
    return blocks


def _rel(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


RUNNABLE = [p for p in PAGES if any(b.language == "python" for b in fenced_blocks(p.read_text()))]


def test_the_documentation_has_examples() -> None:
    assert len(RUNNABLE) >= 10, [_rel(p) for p in RUNNABLE]


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_fences_are_closed_and_python_is_marked_python(page: Path) -> None:
    for block in fenced_blocks(page.read_text()):
        assert block.language not in _PYTHON_LIKE, (
            f"{_rel(page)}:{block.line}: fence it ```python (it then runs) or ```text"
        )


@pytest.mark.parametrize("page", RUNNABLE, ids=_rel)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's python blocks run in order, in one namespace, in a temporary directory."""
    import torch

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # DataLoader workers of the examples share the cores
    try:
        _run_page(page)
    finally:
        torch.set_num_threads(threads)


def _run_page(page: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    name = _rel(page)
    skipped = []
    for block in fenced_blocks(page.read_text()):
        if block.language != "python":
            continue
        if block.needs and importlib.util.find_spec(block.needs.split(".")[0]) is None:
            skipped.append(f"{name}:{block.line} needs {block.needs}")
            continue
        # pad with blank lines so that tracebacks show the page's own line numbers
        source = "\n" * block.line + block.code
        try:
            exec(compile(source, name, "exec"), namespace)  # noqa: S102
        except Exception as exc:
            trace = "".join(traceback.format_exception(exc)[-6:])
            pytest.fail(
                f"{name}: the python block at line {block.line} failed: "
                f"{type(exc).__name__}: {exc}\n{trace}",
                pytrace=False,
            )
    if skipped:  # the page's other blocks ran; say which ones could not, without a skip
        warnings.warn("not run here: " + "; ".join(skipped), stacklevel=1)
