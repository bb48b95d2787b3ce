"""The runnable examples in the docs run as written: every Python block that builds a TestDriver
executes, with its own assertions (tests/test_layout.py checks they import only the public API)."""

from __future__ import annotations

import re

import pytest

from tests.process_helpers import REPO

DOCS = ["docs/joins.md", "docs/state.md"]


def runnable_blocks() -> list[tuple[str, str]]:
    blocks = []
    for doc in DOCS:
        text = (REPO / doc).read_text()
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            if "TestDriver(" in block:
                blocks.append((f"{doc}#{number}", block))
    return blocks


@pytest.mark.parametrize(("where", "code"), runnable_blocks(), ids=[w for w, _ in runnable_blocks()])
def test_doc_example_runs(where, code):
    exec(compile(code, where, "exec"), {"__name__": "docs_example"})
