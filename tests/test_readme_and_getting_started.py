"""The README's code block, docs/getting-started.md and the test in docs/embedded.md run as written,
on the in-process broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.process_helpers import REPO


def python_blocks(path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def text_block_after(path, command: str) -> list[str]:
    """The output a ```text block shows for `$ command`."""
    block = re.search(rf"```text\n\$ {re.escape(command)}\n(.*?)```", path.read_text(), re.S)
    assert block, f"no output shown for {command!r}"
    return block.group(1).splitlines()


def run(tmp_path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "STREAMS_BROKERS"}
    environ.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=environ, capture_output=True, text=True,
                          timeout=120)


def test_the_readme_block_runs_verbatim_on_memory(tmp_path):
    [block] = python_blocks(REPO / "README.md")
    (tmp_path / "readme_app.py").write_text(block)
    done = run(tmp_path, "readme_app.py", env={"STREAMS_BROKERS": "memory://readme"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[('ada', 1), ('ada', 2)]"
    described = run(tmp_path, "-m", "streams", "topics", "readme_app:app", env={"STREAMS_BROKERS": "memory://"})
    assert described.returncode == 0 and "milestones" in described.stdout, described.stderr


def test_getting_started_from_the_app_to_its_test(tmp_path):
    doc = REPO / "docs" / "getting-started.md"
    files = {}
    for block in python_blocks(doc):
        name = re.fullmatch(r"# (\w+\.py)", block.splitlines()[0])
        assert name, f"every block of the walk-through names its file:\n{block}"
        files[name.group(1)] = block
        (tmp_path / name.group(1)).write_text(block)
    assert sorted(files) == ["pageviews.py", "test_pageviews.py", "try_it.py"]
    tried = run(tmp_path, "try_it.py")
    assert tried.returncode == 0, tried.stderr[-3000:]
    assert tried.stdout.splitlines() == text_block_after(doc, "python try_it.py")
    tested = run(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_pageviews.py")
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert text_block_after(doc, "pytest -q test_pageviews.py")[0] in tested.stdout
    topics = run(tmp_path, "-m", "streams", "topics", "pageviews:app")
    assert topics.returncode == 0 and "views-per-minute" in topics.stdout, topics.stderr


def test_the_embedded_docs_test_runs(tmp_path):
    *_, block = python_blocks(REPO / "docs" / "embedded.md")
    (tmp_path / "test_doubler.py").write_text(block)
    tested = run(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
                 "test_doubler.py")
    assert tested.returncode == 0 and "1 passed" in tested.stdout, tested.stdout[-3000:]
