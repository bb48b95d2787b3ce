"""The package's shape: one installed namespace, layers that import only downward, a declared public API.

docs/architecture.md draws the layers; these tests keep the code and the
examples and docs honest to it.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "streams"

# Highest first: a module may import its own layer and the layers after it, never one before it.
LAYERS = ["app", "dsl", "runtime", "task", "compiler", "processors", "windows", "state", "transport", "core"]
CORE = {"streams.errors", "streams.record", "streams.serdes", "streams.models", "streams.partitioner",
        "streams._murmur2", "streams.gcpause", "streams.metrics", "streams.config", "streams.private_files"}
PUBLIC_MODULES = {"streams", "streams.state", "streams.windows", "streams.testing"}


def layer_of(module: str) -> str:
    if module in CORE:
        return "core"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "app"


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    return name.removesuffix(".__init__")


def streams_imports(tree: ast.AST) -> list[tuple[str, int]]:
    """Every import of a streams module, type-only ones included: a type is a dependency too."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "streams":
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "streams")
    return found


def test_every_module_belongs_to_a_layer_and_imports_only_downward():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = layer_of(module_name(path))
        for target, line in streams_imports(ast.parse(path.read_text())):
            if LAYERS.index(layer_of(target)) < LAYERS.index(source):
                violations.append(f"{path.relative_to(REPO)}:{line}: {source} imports {layer_of(target)} ({target})")
    assert violations == []


def test_the_layer_check_catches_an_upward_import():
    tree = ast.parse("from streams.runtime.worker import Worker\n")
    (target, _), = streams_imports(tree)
    assert LAYERS.index(layer_of(target)) < LAYERS.index(layer_of("streams.task.task"))


def test_only_streams_is_installed_at_top_level():
    packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").exists() and p.name not in
                {"tests", "examples", "bench"}}
    assert packages == {"streams"}
    config = (REPO / "pyproject.toml").read_text()
    assert re.search(r'include = \["streams\*"\]', config)


def test_user_modules_named_state_and_windows_break_nothing(tmp_path):
    """A user's state.py and windows.py sit first on sys.path: the app, the CLI and the TestDriver still work."""
    (tmp_path / "state.py").write_text("raise ImportError('the framework imported the user state.py')\n")
    (tmp_path / "windows.py").write_text("raise ImportError('the framework imported the user windows.py')\n")
    (tmp_path / "shop.py").write_text(textwrap.dedent("""
        from streams import App, Tumbling
        from streams.testing import TestDriver

        app = App("shop", brokers="memory://shop")
        app.stream("clicks").group_by_key().window(Tumbling(1000)).count(name="per-second")

        if __name__ == "__main__":
            with TestDriver(app) as driver:
                driver.pipe_input("clicks", "ada", {}, timestamp=10)
                driver.pipe_input("clicks", "ada", {}, timestamp=20)
                print(driver.store("per-second").fetch("ada")[0][1])
    """))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    run = subprocess.run([sys.executable, "shop.py"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert (run.returncode, run.stdout.strip()) == (0, "2"), run.stderr
    cli = subprocess.run([sys.executable, "-m", "streams", "describe", "shop:app"], cwd=tmp_path,
                         capture_output=True, text=True, env=env)
    assert cli.returncode == 0 and "per-second" in cli.stdout, cli.stderr


@pytest.mark.parametrize("module", sorted(PUBLIC_MODULES))
def test_public_modules_declare_what_they_export(module):
    imported = importlib.import_module(module)
    assert imported.__all__, f"{module} has no __all__"
    for name in imported.__all__:
        assert getattr(imported, name, None) is not None, f"{module}.{name} is declared but missing"


def test_the_user_facing_names_are_exported():
    import streams

    for name in ("App", "Stream", "Table", "GlobalTable", "Tumbling", "Hopping", "Sliding", "Session",
                 "JoinWindows", "WindowedSerde", "TestDriver", "Processor", "ProcessorContext", "Record"):
        assert name in streams.__all__


def code_blocks(path: Path) -> list[str]:
    if path.suffix == ".py":
        return [path.read_text()]
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def imported_modules(source: str) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


DOCUMENTS = sorted([*REPO.glob("examples/*.py"), *REPO.glob("docs/*.md"), REPO / "README.md"])


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_examples_and_docs_use_only_the_public_api(path):
    problems = []
    for block in code_blocks(path):
        for module, names in imported_modules(block):
            if module.split(".")[0] != "streams":
                continue
            if module not in PUBLIC_MODULES:
                problems.append(f"imports internal module {module}")
                continue
            exported = importlib.import_module(module).__all__
            problems.extend(f"imports {module}.{name}, which is not in its __all__"
                            for name in names if name not in exported and name != "*")
    assert problems == []


def test_the_public_api_check_catches_internal_imports():
    assert imported_modules("from streams.runtime.worker import Worker\n") == [("streams.runtime.worker", ["Worker"])]
    assert "streams.runtime.worker" not in PUBLIC_MODULES
