"""Runs of Workflows that no runtime serves: a draft runtime for them, or a clear failure.

A WorkflowRun can wait for a Workflow that has no runtime of its own: the API's ``POST
/workflows/{id}/execute`` creates a Pending run carrying ``spec.definition`` (the editor's draft) for
a Workflow whose ``spec.deployed`` may be ``false``, and anyone may create a run for an undeployed or
invalid Workflow. :func:`draft_demand` decides, as data, what becomes of such runs:

- **Draft runtime.** An undeployed Workflow whose spec parses gets a runtime (its ConfigMap,
  Deployment and Service, built as for a deployed one) with one replica while it has a Pending or
  Running run the runtime can execute, and none (the three objects are deleted again) once there is
  no such run. A run can be executed when the Workflow is valid, or when the run carries its own
  definition (a draft of an invalid Workflow: the runtime then executes only runs with a definition).
- **Failure.** A Pending run that no runtime will ever execute is marked ``Failed`` with the reason,
  instead of waiting forever: a run without a definition of an invalid Workflow that has no runtime
  with a last valid definition (the validation message says why), and any run of a Workflow whose
  spec cannot be parsed at all (no runtime can be built for it).

Runs that are ``Running`` are never failed here: someone holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
REASON_DRAFT_RUN = "DraftRun"


@dataclass(frozen=True)
class RunFailure:
    """A Pending run to mark Failed, with the error to write."""

    name: str
    resource_version: str
    error: str


@dataclass(frozen=True)
class DraftDemand:
    """What the runs of a Workflow without a runtime of its own need."""

    pending: int = 0  # runs a draft runtime would execute, by phase
    running: int = 0
    runs: list[str] = field(default_factory=list)  # their names, sorted
    fail: list[RunFailure] = field(default_factory=list)

    @property
    def wanted(self) -> bool:
        """Whether a draft runtime should run now."""
        return self.pending + self.running > 0


def _phase(run: JSON) -> str:
    return str((run.get("status") or {}).get("phase") or "Pending")


def _has_definition(run: JSON) -> bool:
    return isinstance((run.get("spec") or {}).get("definition"), dict)


def draft_demand(
    active_runs: list[JSON],
    *,
    parsed: bool,
    valid: bool,
    serves_runs: bool,
    problem: str,
) -> DraftDemand:
    """Sort a Workflow's Pending and Running runs into demand for a draft runtime and failures.

    ``parsed``: the spec parses (a runtime can be built); ``valid``: it passed validation;
    ``serves_runs``: a runtime of its own executes its runs (deployed and valid, or deployed with a
    runtime that keeps the last valid definition), so nothing here applies; ``problem``: why the
    Workflow is invalid, for the failed runs' error.
    """
    if serves_runs:
        return DraftDemand()
    pending = running = 0
    names: list[str] = []
    failures: list[RunFailure] = []
    for run in active_runs:
        meta = run.get("metadata") or {}
        phase = _phase(run)
        runnable = parsed and (valid or _has_definition(run))
        if runnable:
            names.append(str(meta.get("name")))
            if phase == "Running":
                running += 1
            else:
                pending += 1
        elif phase == "Pending":
            failures.append(
                RunFailure(str(meta.get("name")), str(meta.get("resourceVersion") or ""), _error(problem))
            )
    return DraftDemand(pending, running, sorted(names), sorted(failures, key=lambda f: f.name))


def _error(problem: str) -> str:
    text = f"No runtime can execute this run: the Workflow is invalid: {problem}"
    return text if len(text) <= 8192 else text[:8191] + "…"
