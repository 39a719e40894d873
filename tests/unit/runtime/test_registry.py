"""The registry implements exactly the catalog's node types."""

from __future__ import annotations

import inspect

from tideflow.core.catalog import CATALOG
from tideflow.runtime.nodes.registry import IMPLEMENTATIONS


def test_every_catalog_type_has_an_implementation_and_nothing_else_does() -> None:
    assert set(IMPLEMENTATIONS) == set(CATALOG)


def test_executors_are_coroutine_functions_and_only_pausing_types_resume() -> None:
    for type_id, implementation in IMPLEMENTATIONS.items():
        assert inspect.iscoroutinefunction(implementation.execute), type_id
    assert {type_id for type_id, impl in IMPLEMENTATIONS.items() if impl.resume is not None} == {"approval"}
