"""The Python code blocks of the user guide (docs/*.md) are executed, in order, per file,
in a fresh namespace and a temporary working directory, so the documentation never rots.

A block fenced with ```python is run; use ```text or ```bash for anything else.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text())


@pytest.mark.parametrize("doc", [d for d in DOCS if blocks(d)], ids=lambda p: p.name)
def test_doc_code_blocks_run(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROM_ROOT", str(ROOT))
    namespace: dict = {"__name__": "__doc__"}
    for i, code in enumerate(blocks(doc)):
        try:
            exec(compile(code, f"{doc.name}[block {i + 1}]", "exec"), namespace)
        except Exception as exc:  # report which block failed
            raise AssertionError(f"{doc.name}: code block {i + 1} failed: {exc!r}\n{code}") from exc


def test_there_is_a_guide_with_code():
    assert blocks(ROOT / "docs/guide.md"), "docs/guide.md must contain runnable examples"
