"""docs/schemas.md runs as written: its Python blocks are executed in order as one module, and the
test functions they define run against the real schema registry."""

from __future__ import annotations

import re
import sys
import types

import pytest

from tests.conftest import REPO

DOC = REPO / "docs" / "schemas.md"


def doc_module() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    module = sys.modules["schemas_doc"] = types.ModuleType("schemas_doc")  # dataclasses look their module up
    exec(compile("\n".join(blocks), str(DOC), "exec"), module.__dict__)
    return module


MODULE = doc_module()
TESTS = sorted(name for name in vars(MODULE) if name.startswith("test_"))


def test_the_doc_has_its_example_tests():
    assert TESTS == ["test_revenue_per_customer_and_minute", "test_version_1_orders_are_read_with_the_default_currency"]


@pytest.mark.parametrize("name", TESTS)
def test_doc_example(name, schema_registry):
    getattr(MODULE, name)(schema_registry)
