"""Every example Workflow in examples/ runs to completion on the engine (HTTP answered in process)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.unit.runtime.helpers import run_virtual, services
from tideflow.core.models import RunPhase, Workflow
from tideflow.runtime.engine import TriggerEvent, WorkflowEngine

EXAMPLES = sorted(Path(__file__).resolve().parents[3].joinpath("examples").glob("*.yaml"))


def _workflows(path: Path) -> list[Workflow]:
    with path.open() as stream:
        documents = list(yaml.safe_load_all(stream))
    return [Workflow.model_validate(doc) for doc in documents if doc and doc.get("kind") == "Workflow"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(path: Path) -> None:
    for workflow in _workflows(path):
        spec = workflow.spec
        hosts = {httpx.URL(n.config["url"]).host: ["93.184.216.34"] for n in spec.nodes if "url" in n.config}
        engine = WorkflowEngine(
            spec,
            services=services(
                handler=lambda request: httpx.Response(200, json={"orders": [{"id": 1}], "ok": True}),
                resolver=hosts,
            ),
        )
        trigger_type = next(node.type for node in spec.nodes if node.type.endswith("_trigger"))
        event = TriggerEvent(type=trigger_type.removesuffix("_trigger"), inputs={"id": 1}, run_id="r")
        result, _ = run_virtual(engine.run(event))
        assert result.phase is RunPhase.COMPLETED, result.error
