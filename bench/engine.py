"""Engine overhead per node, against a baseline of awaited no-op coroutines measured in the same run.

Two shapes: a chain of 1,000 nodes (each waits for the previous one) and a fan-out of 100 nodes (all
ready at once, run concurrently). Every node runs a no-op executor, so what is measured is the engine:
scheduling, input assembly, config handling, time limits, bookkeeping and the final per-node log.
The baseline is a plain loop awaiting a no-op coroutine once per node. Each figure is the best of
``--repeat`` runs.

    .venv/bin/python bench/engine.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from tideflow.core.models import Connection, Node, RunPhase, WorkflowDefinition, WorkflowSettings
from tideflow.runtime.engine import TriggerEvent, WorkflowEngine
from tideflow.runtime.nodes.base import NodeContext, NodeImplementation, NodeOutcome
from tideflow.runtime.nodes.registry import IMPLEMENTATIONS


async def noop_executor(ctx: NodeContext) -> NodeOutcome:
    return NodeOutcome(None)


async def noop() -> None:
    return None


def build(kind: str, count: int) -> WorkflowDefinition:
    nodes = [Node(id="start", type="manual_trigger")]
    nodes += [Node(id=f"n{i}", type="transform", config={"set": {}}) for i in range(count)]
    if kind == "chain":
        pairs = [("start", "n0")] + [(f"n{i}", f"n{i + 1}") for i in range(count - 1)]
    else:
        pairs = [("start", f"n{i}") for i in range(count)]
    connections = [Connection(id=f"c{i}", source=s, target=t) for i, (s, t) in enumerate(pairs)]
    # model_construct: the chain is longer than a Workflow may be (MAX_NODES), the engine does not care.
    return WorkflowDefinition.model_construct(
        nodes=nodes, connections=connections, settings=WorkflowSettings()
    )


async def best_of(repeat: int, body: Callable[[], Awaitable[None]]) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        await body()
        timings.append(time.perf_counter() - start)
    return min(timings)


async def measure(repeat: int) -> list[tuple[str, int, float]]:
    implementations = {**IMPLEMENTATIONS, "transform": NodeImplementation(noop_executor)}
    results: list[tuple[str, int, float]] = []

    async def baseline() -> None:
        for _ in range(1000):
            await noop()

    results.append(("baseline: awaited no-op coroutine", 1000, await best_of(repeat, baseline)))
    for kind, count in (("chain", 1000), ("fan-out", 100)):
        engine = WorkflowEngine(build(kind, count), implementations=implementations)

        async def run(engine: WorkflowEngine = engine) -> None:
            result = await engine.run(TriggerEvent(run_id="bench"))
            if result.phase is not RunPhase.COMPLETED:
                raise RuntimeError(result.error)

        # count + 1: the trigger node runs too.
        results.append((f"engine: {kind} of {count} nodes", count + 1, await best_of(repeat, run)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per measurement; the best is kept")
    args = parser.parse_args()
    results = asyncio.run(measure(args.repeat))
    base = results[0][2] / results[0][1]
    print(f"{'measurement':<40} {'us/node':>10} {'x baseline':>11}")
    for label, count, seconds in results:
        per_node = seconds / count
        print(f"{label:<40} {per_node * 1e6:>10.2f} {per_node / base:>11.1f}")


if __name__ == "__main__":
    main()
