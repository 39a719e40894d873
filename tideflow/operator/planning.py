"""One reconcile, decided as data: from a Workflow and what was observed to what should be.

:func:`plan` is pure. Given the Workflow as stored, the children found in the cluster, the counts of
its runs and ``now``, it returns the children to create or update (or to remove), the complete
status to write, and the Events that tell the story of the transitions. The reconciler in
``reconciler.py`` only reads, calls this, and writes.

Conditions follow the Kubernetes convention: one entry per type, ``lastTransitionTime`` changes
only when ``status`` changes, and each carries the ``observedGeneration`` it was computed from.

- ``Valid``: the definition passed :func:`tideflow.core.validation.validate_workflow`.
- ``Deployed``: the runtime's ConfigMap, Deployment and Service exist for this Workflow.
- ``Running``: the lifecycle policy wants the runtime up; the reason is the policy's
  (``AlwaysOn``, ``InsideWindow``, ``IdleTimeout``, ``StoppedByUser`` ...).
- ``Ready``: every wanted runtime replica is ready to take triggers.

An invalid Workflow is never deployed for the first time; when a deployed Workflow becomes
invalid, its runtime keeps the last valid definition and ``Valid=False`` says why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tideflow.core import names
from tideflow.core.catalog import format_field_path
from tideflow.core.clock import format_time, parse_time
from tideflow.core.models import MAX_STATUS_ISSUES, DeploymentStatus, ValidationIssue, WorkflowSpec
from tideflow.core.schedules import Skip
from tideflow.core.validation import validate_workflow
from tideflow.operator import builders, lifecycle
from tideflow.operator.drafts import REASON_DRAFT_RUN, RunFailure, draft_demand
from tideflow.operator.scheduling import plan_schedule
from tideflow.operator.settings import OperatorSettings

JSON = dict[str, Any]
CONDITION_DEPLOYED = "Deployed"
CONDITION_RUNNING = "Running"


@dataclass(frozen=True)
class Observed:
    """The children found in the cluster (``None`` when absent) and the workflow's runs."""

    config_map: JSON | None = None
    deployment: JSON | None = None
    service: JSON | None = None
    pending_runs: int = 0
    running_runs: int = 0
    active_runs: list[JSON] = field(default_factory=list)  # the runs still Pending or Running


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the Workflow."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Plan:
    """What the reconciler must do."""

    children: list[JSON] = field(default_factory=list)  # desired ConfigMap, Service, Deployment
    remove_children: bool = False
    status: JSON = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # children owned by someone else
    create_runs: list[JSON] = field(default_factory=list)  # scheduled runs to create (409 = already made)
    cancel_runs: list[str] = field(default_factory=list)  # runs replaced by concurrencyPolicy Replace
    fail_runs: list[RunFailure] = field(default_factory=list)  # Pending runs no runtime will execute
    skipped: list[Skip] = field(default_factory=list)
    skipped_count: int = 0
    requeue_at: dt.datetime | None = None  # reconcile again then, even if nothing changes


def parse_spec(workflow: JSON) -> tuple[WorkflowSpec | None, list[ValidationIssue], list[ValidationIssue]]:
    """The typed spec plus validation errors and warnings; never raises on any stored Workflow."""
    try:
        spec = WorkflowSpec.model_validate(workflow.get("spec") or {})
    except ValidationError as exc:
        issues = [
            ValidationIssue(
                path=_truncate(format_field_path("spec", error["loc"]), 512),
                message=_truncate(error["msg"], 1024),
            )
            for error in exc.errors()[:MAX_STATUS_ISSUES]
        ]
        return None, issues, []
    result = validate_workflow(spec)
    return spec, result.errors, result.warnings


def _started_at(running: JSON | None, now: dt.datetime) -> dt.datetime | None:
    """When the runtime was last started by its policy: the activity baseline of idle-shutdown.

    First visit, or an explicit start after an explicit stop: now. Running: when it started.
    Stopped by the policy itself: never (it stays stopped until demand arrives).
    """
    if running is None or running.get("reason") == lifecycle.STOPPED_BY_USER:
        return now
    if running.get("status") == "True":
        return _time(running.get("lastTransitionTime"))
    return None


def _rolled_out(deployment: JSON, wanted: int) -> bool:
    """Like ``kubectl rollout status``: the controller saw the latest spec, and only new pods run."""
    status = deployment.get("status") or {}
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    return (
        wanted > 0
        and int(status.get("observedGeneration") or 0) >= generation
        and int(status.get("updatedReplicas") or 0) >= wanted
        and int(status.get("replicas") or 0) <= int(status.get("updatedReplicas") or 0)  # no old pods left
        and int(status.get("readyReplicas") or 0) >= wanted
    )


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _owned_by(child: JSON | None, workflow: JSON) -> bool:
    if child is None:
        return True
    return any(
        ref.get("uid") == workflow["metadata"]["uid"] and ref.get("controller")
        for ref in child["metadata"].get("ownerReferences") or []
    )


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def set_condition(
    conditions: list[JSON],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: dt.datetime,
) -> list[JSON]:
    """Return ``conditions`` with ``type_`` set; its transition time moves only if its status changes."""
    value = "True" if status else "False"
    previous = next((c for c in conditions if c.get("type") == type_), None)
    since = (
        previous["lastTransitionTime"] if previous and previous.get("status") == value else format_time(now)
    )
    updated = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": _truncate(message, 32768),
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
    return [c for c in conditions if c.get("type") != type_] + [updated]


def condition(status: JSON, type_: str) -> JSON | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def plan(workflow: JSON, observed: Observed, now: dt.datetime, settings: OperatorSettings) -> Plan:
    meta = workflow["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    generation = int(meta.get("generation", 1))
    old: JSON = workflow.get("status") or {}
    raw_spec = workflow.get("spec") or {}
    deployed = raw_spec.get("deployed") is True
    spec, errors, warnings = parse_spec(workflow)
    valid = spec is not None and not errors
    result = Plan()
    conditions: list[JSON] = [dict(c) for c in old.get("conditions") or [] if isinstance(c, dict)]

    message = "The definition is valid." if valid else f"{len(errors)} error(s): {errors[0].message}"
    if valid and warnings:
        message += f" {len(warnings)} warning(s)."
    conditions = set_condition(
        conditions, names.CONDITION_VALID, valid, "Valid" if valid else "Invalid", message, generation, now
    )

    scheduled = condition(old, names.CONDITION_SCHEDULED)
    scheduled_since = (
        _time(scheduled.get("lastTransitionTime"))
        if scheduled and scheduled.get("status") == "True"
        else None
    )
    schedule_plan = plan_schedule(workflow, spec, valid, observed.active_runs, now, scheduled_since)
    conditions = set_condition(
        conditions,
        names.CONDITION_SCHEDULED,
        schedule_plan.active,
        schedule_plan.reason,
        schedule_plan.message,
        generation,
        now,
    )
    result.create_runs = schedule_plan.create
    result.cancel_runs = schedule_plan.cancel
    result.skipped = schedule_plan.skipped
    result.skipped_count = schedule_plan.skipped_count
    wake = len(schedule_plan.create) + (
        1
        if schedule_plan.next_fire is not None
        and schedule_plan.next_fire - now <= dt.timedelta(seconds=settings.schedule_wake_lead_seconds)
        else 0
    )

    existing = [observed.config_map, observed.deployment, observed.service]
    foreign = [child["kind"] for child in existing if child is not None and not _owned_by(child, workflow)]
    has_runtime = observed.deployment is not None and not foreign
    replicas_wanted = 0
    decision: lifecycle.Decision | None = None

    drafts = draft_demand(
        observed.active_runs,
        parsed=spec is not None,
        valid=valid,
        serves_runs=deployed and (valid or has_runtime or bool(foreign)),
        problem=f"{errors[0].path}: {errors[0].message}" if errors else "the definition is invalid",
    )
    result.fail_runs = drafts.fail
    draft_runtime = not deployed and not foreign and spec is not None and drafts.wanted

    if draft_runtime and spec is not None:
        # Not deployed, but runs wait for it: a runtime for them, as for an on-demand Workflow with
        # one replica, until none is left (then the objects go, as for any undeployed Workflow).
        replicas_wanted = 1
        result.children = [
            builders.config_map(workflow, spec),
            builders.service(workflow, settings),
            builders.deployment(workflow, spec, settings, replicas_wanted),
        ]
        waiting = f"{drafts.pending} waiting, {drafts.running} running"
        conditions = set_condition(
            conditions,
            CONDITION_DEPLOYED,
            False,
            REASON_DRAFT_RUN,
            f"spec.deployed is false; a draft runtime executes its runs ({waiting}: "
            f"{', '.join(drafts.runs[:5])}{' ...' if len(drafts.runs) > 5 else ''}) and is removed once "
            "none is left.",
            generation,
            now,
        )
        deployment_status = DeploymentStatus.NOT_DEPLOYED
    elif not deployed:
        result.remove_children = any(child is not None for child in existing) and not foreign
        conditions = set_condition(
            conditions, CONDITION_DEPLOYED, False, "NotDeployed", "spec.deployed is false.", generation, now
        )
        deployment_status = DeploymentStatus.NOT_DEPLOYED
    elif foreign:
        result.conflicts = foreign
        conditions = set_condition(
            conditions,
            CONDITION_DEPLOYED,
            False,
            "NameConflict",
            f"A {', '.join(foreign)} named {name} exists and is not owned by this "
            "Workflow; it is left alone.",
            generation,
            now,
        )
        deployment_status = DeploymentStatus.FAILED
    elif not valid and not has_runtime:
        conditions = set_condition(
            conditions,
            CONDITION_DEPLOYED,
            False,
            "Invalid",
            "Not deployed: the definition is invalid (see status.errors).",
            generation,
            now,
        )
        deployment_status = DeploymentStatus.FAILED
    else:
        running_condition = condition(old, CONDITION_RUNNING)
        started_at = _started_at(running_condition, now)
        if spec is not None and valid:
            decision = lifecycle.decide(
                spec.lifecycle,
                spec.replicas,
                lifecycle.Observed(
                    last_activity_at=_time(old.get("lastActivityAt")),
                    started_at=started_at,
                    pending_runs=observed.pending_runs + wake,
                    running_runs=observed.running_runs,
                ),
                now,
            )
            replicas_wanted = decision.replicas
            result.children = [
                builders.config_map(workflow, spec),
                builders.service(workflow, settings),
                builders.deployment(workflow, spec, settings, replicas_wanted),
            ]
        else:  # invalid, but a runtime with the last valid definition exists: it is left as it is
            replicas_wanted = int((observed.deployment or {}).get("spec", {}).get("replicas", 0))
        reason = "Deployed" if valid else "LastValidDefinition"
        text = (
            "The runtime's ConfigMap, Deployment and Service exist."
            if valid
            else "The runtime keeps the last valid definition; this one is invalid (see status.errors)."
        )
        conditions = set_condition(conditions, CONDITION_DEPLOYED, True, reason, text, generation, now)
        if decision is not None:
            conditions = set_condition(
                conditions,
                CONDITION_RUNNING,
                not decision.stopped,
                decision.reason,
                decision.message,
                generation,
                now,
            )
        deployment_status = DeploymentStatus.STOPPED if replicas_wanted == 0 else DeploymentStatus.STARTING

    dep_status = (observed.deployment or {}).get("status") or {}
    ready = int(dep_status.get("readyReplicas") or 0)
    current = int(dep_status.get("replicas") or 0)
    if (
        deployment_status == DeploymentStatus.STARTING
        and has_runtime
        and _rolled_out(observed.deployment or {}, replicas_wanted)
    ):
        deployment_status = DeploymentStatus.RUNNING
    is_ready = deployment_status == DeploymentStatus.RUNNING
    ready_reason = {
        DeploymentStatus.RUNNING: "RuntimeReady",
        DeploymentStatus.STARTING: "Starting",
        DeploymentStatus.STOPPED: "Stopped",
        DeploymentStatus.NOT_DEPLOYED: "NotDeployed",
        DeploymentStatus.FAILED: "Failed",
    }[deployment_status]
    ready_message = (
        f"Not deployed; the draft runtime has {ready}/{replicas_wanted} replica(s) ready."
        if draft_runtime
        else "Not deployed."
        if not deployed
        else "Stopped."
        if replicas_wanted == 0
        else f"{ready}/{replicas_wanted} runtime replica(s) ready."
    )
    conditions = set_condition(
        conditions, names.CONDITION_READY, is_ready, ready_reason, ready_message, generation, now
    )
    if not deployed or deployment_status == DeploymentStatus.FAILED:
        conditions = [c for c in conditions if c["type"] != CONDITION_RUNNING]

    status: JSON = {
        "observedGeneration": generation,
        "conditions": sorted(conditions, key=lambda c: _ORDER.get(c["type"], 99)),
        "deploymentStatus": deployment_status.value,
        "replicas": current,
        "readyReplicas": ready,
        "selector": builders.selector_string(name),
        "endpoint": (
            builders.endpoint(name, namespace, settings)
            if deployed and deployment_status != DeploymentStatus.FAILED
            else None
        ),
        "stoppedReason": decision.reason if decision is not None and decision.stopped else None,
        "nextTransitionAt": (
            format_time(decision.next_transition)
            if decision is not None and decision.next_transition
            else None
        ),
        "errors": [issue.to_dict() for issue in errors[:MAX_STATUS_ISSUES]] or None,
        "warnings": [issue.to_dict() for issue in warnings[:MAX_STATUS_ISSUES]] or None,
    }
    status.update(schedule_plan.status)
    result.status = status
    result.events = _events(old, status, errors)
    result.events += [
        Event(
            "Normal",
            "Scheduled",
            f"Created run {run['metadata']['name']} for {run['spec']['scheduledTime']}.",
        )
        for run in schedule_plan.create
    ]
    result.events += _draft_events(old, status, drafts.runs if draft_runtime else [])
    result.events += [
        Event("Warning", "RunFailed", f"Failed run {failure.name}: {failure.error}")
        for failure in drafts.fail[:5]
    ]
    result.events += [
        Event(
            "Warning",
            "ScheduleSkipped",
            f"Skipped the run for {format_time(skip.scheduled_time)}: {skip.reason}: {skip.message}",
        )
        for skip in schedule_plan.skipped[-5:]
    ]
    moments = [
        m
        for m in (
            schedule_plan.next_fire - dt.timedelta(seconds=settings.schedule_wake_lead_seconds)
            if schedule_plan.next_fire
            else None,
            schedule_plan.next_fire,
            decision.next_transition if decision is not None else None,
        )
        if m is not None and m > now
    ]
    result.requeue_at = min(moments) if moments else None
    return result


_ORDER = {
    names.CONDITION_VALID: 0,
    CONDITION_DEPLOYED: 1,
    CONDITION_RUNNING: 2,
    names.CONDITION_READY: 3,
    names.CONDITION_SCHEDULED: 4,
}


def _draft_events(old: JSON, new: JSON, runs: list[str]) -> list[Event]:
    """``DraftRuntime`` Events when a draft runtime is started for runs and when it is removed."""
    was = (condition(old, CONDITION_DEPLOYED) or {}).get("reason") == REASON_DRAFT_RUN
    now = (condition(new, CONDITION_DEPLOYED) or {}).get("reason") == REASON_DRAFT_RUN
    if now and not was:
        listed = ", ".join(runs[:5]) + (" ..." if len(runs) > 5 else "")
        return [Event("Normal", "DraftRuntime", f"Started a draft runtime for run(s) {listed}.")]
    if was and not now:
        if (condition(new, CONDITION_DEPLOYED) or {}).get("reason") == "NotDeployed":
            return [Event("Normal", "DraftRuntime", "Removed the draft runtime: no run is left for it.")]
        return [Event("Normal", "DraftRuntime", "The Workflow's own runtime takes over from the draft one.")]
    return []


def _events(old: JSON, new: JSON, errors: list[ValidationIssue]) -> list[Event]:
    """Events for real transitions only: the story ``kubectl describe wf`` tells."""
    events: list[Event] = []
    old_valid = condition(old, names.CONDITION_VALID)
    new_valid = condition(new, names.CONDITION_VALID)
    if new_valid and (old_valid is None or old_valid["status"] != new_valid["status"]):
        if new_valid["status"] == "False":
            listed = "; ".join(f"{e.path}: {e.message}" for e in errors[:5])
            events.append(Event("Warning", "Invalid", _truncate(f"Invalid definition: {listed}", 1024)))
        elif old_valid is not None:
            events.append(Event("Normal", "Valid", "The definition is valid again."))
    old_running = condition(old, CONDITION_RUNNING)
    new_running = condition(new, CONDITION_RUNNING)
    if new_running and (
        old_running is None
        or (old_running["status"], old_running["reason"]) != (new_running["status"], new_running["reason"])
    ):
        kind = "Started" if new_running["status"] == "True" else "Stopped"
        events.append(Event("Normal", kind, f"{new_running['reason']}: {new_running['message']}"))
    if old.get("deploymentStatus") != new["deploymentStatus"]:
        event_type = "Warning" if new["deploymentStatus"] == DeploymentStatus.FAILED.value else "Normal"
        deployed = condition(new, CONDITION_DEPLOYED)
        detail = deployed["message"] if deployed else ""
        events.append(
            Event(
                event_type,
                new["deploymentStatus"],
                f"Deployment status {old.get('deploymentStatus') or 'unset'} -> "
                f"{new['deploymentStatus']}. {detail}".strip(),
            )
        )
    return events


def status_patch(old: JSON, new: JSON) -> JSON:
    """The merge patch that turns ``old`` status into ``new`` (``None`` removes a field); {} if equal."""
    patch: JSON = {}
    for key, value in new.items():
        if value is None:
            if key in old:
                patch[key] = None
        elif old.get(key) != value:
            patch[key] = value
    return patch
