"""The schedule part of a reconcile, as data: which WorkflowRuns to create or cancel, and the status.

The operator owns schedules: a stopped or scaled-to-zero workflow still fires, because firing is
creating a Pending WorkflowRun, which the lifecycle policy then wakes the runtime for. Exactly once
comes from :mod:`tideflow.core.schedules`: runs are named from (workflow, fire time), so a second
operator, a restart or a retry gets a 409 AlreadyExists instead of a duplicate. Progress is the
``status.scheduleCheckpoint``: every fire time up to it was handled, a run created or the skip
recorded (an Event each, and a metric); after an outage or a pause, ``catchup`` decides what of the
interval since the checkpoint still runs.

The schedule is active when the workflow is ``Active``, deployed and valid, and its schedule is not
``manual``; the ``Scheduled`` condition says whether it is, and why not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tideflow.core import names
from tideflow.core import schedules as core
from tideflow.core.clock import format_time, parse_time
from tideflow.core.models import WorkflowSpec

JSON = dict[str, Any]
ACTIVE_PHASES = ("Pending", "Running")


@dataclass
class SchedulePlan:
    """What to do for the schedule in this reconcile."""

    active: bool
    reason: str
    message: str
    create: list[JSON] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    skipped: list[core.Skip] = field(default_factory=list)
    skipped_count: int = 0
    created_times: list[dt.datetime] = field(default_factory=list)
    status: JSON = field(default_factory=dict)
    next_fire: dt.datetime | None = None


def _time(value: Any) -> dt.datetime | None:
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def run_body(workflow: JSON, scheduled_time: dt.datetime) -> JSON:
    """The Pending WorkflowRun for one fire time, owned by the Workflow (deleted with it)."""
    meta = workflow["metadata"]
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.WORKFLOWRUN_KIND,
        "metadata": {
            "name": core.run_name(meta["name"], scheduled_time),
            "namespace": meta["namespace"],
            "labels": {
                names.LABEL_WORKFLOW: meta["name"],
                names.LABEL_TRIGGER_TYPE: "schedule",
                names.LABEL_PART_OF: names.PART_OF,
            },
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": names.WORKFLOW_KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
            ],
        },
        "spec": {
            "workflowRef": {"name": meta["name"]},
            "triggerType": "schedule",
            "scheduledTime": format_time(scheduled_time),
            "inputs": {"scheduledTime": format_time(scheduled_time)},
        },
    }


def plan_schedule(
    workflow: JSON,
    spec: WorkflowSpec | None,
    valid: bool,
    active_runs: list[JSON],
    now: dt.datetime,
    scheduled_since: dt.datetime | None,
) -> SchedulePlan:
    """Decide the schedule's runs at ``now``.

    ``active_runs`` are the workflow's runs still Pending or Running; ``scheduled_since`` is when
    the ``Scheduled`` condition became True (``None`` when it is not True yet).
    """
    raw = workflow.get("spec") or {}
    old = workflow.get("status") or {}
    schedule = spec.schedule if spec is not None else None
    state = core.activity(
        schedule, state=str(raw.get("state")), deployed=raw.get("deployed") is True, valid=valid
    )
    if not state.active or schedule is None:
        return SchedulePlan(False, state.reason, state.message, status={"nextRunAt": None})
    preview = core.next_fire_time(schedule, now)

    checkpoint = _time(old.get("scheduleCheckpoint"))
    started = scheduled_since or now
    decided = core.due(schedule, checkpoint, now, checkpoint or started)
    result = SchedulePlan(True, "Active", "", next_fire=decided.next)
    running = [
        run["metadata"]["name"]
        for run in active_runs
        if (run.get("status") or {}).get("phase", "Pending") in ACTIVE_PHASES
    ]
    for fire_time in decided.fire:
        decision = core.concurrency(schedule.concurrency_policy, running)
        if not decision.create:
            result.skipped.append(
                core.Skip(
                    fire_time,
                    decision.skip_reason or "ConcurrencyForbid",
                    decision.message or "A run is still active.",
                )
            )
            result.skipped_count += 1
            continue
        result.cancel.extend(name for name in decision.cancel if name not in result.cancel)
        body = run_body(workflow, fire_time)
        result.create.append(body)
        result.created_times.append(fire_time)
        running = [body["metadata"]["name"]] if decision.cancel else [*running, body["metadata"]["name"]]
    result.skipped = [*decided.skipped, *result.skipped]
    result.skipped_count += decided.skipped_count + (1 if decided.expired else 0)
    last_run = max(result.created_times) if result.created_times else _time(old.get("lastRunAt"))
    next_text = format_time(decided.next) if decided.next else "never"
    result.message = f"Next run at {next_text} ({schedule.type.value} in {schedule.timezone})."
    handled = bool(decided.fire or decided.skipped or decided.skipped_count or decided.expired)
    # The checkpoint moves only when a fire time was handled: a quiet reconcile writes nothing
    # (moving it to ``now`` every time would patch the status, which triggers a reconcile, ...).
    new_checkpoint = decided.checkpoint if handled else checkpoint
    result.status = {
        "scheduleCheckpoint": format_time(new_checkpoint) if new_checkpoint else None,
        "nextRunAt": format_time(decided.next) if decided.next else None,
        "lastRunAt": format_time(last_run) if last_run else None,
    }
    if preview is None:
        result.message = "The schedule has no future fire time."
    return result
