"""The ``tideflow`` command: run a Workflow manifest locally with the engine, or validate it.

    tideflow [-v] run FILE [--input JSON] [--trigger-type TYPE] [--approve | --reject] [--timeout SECONDS]
    tideflow [-v] validate FILE [--next N] [--from TIME]

``FILE`` is a YAML or JSON manifest (``-`` reads standard input) holding a ``Workflow`` (the first one,
or the one named with ``--name``), or a bare definition (``nodes``, ``connections``, ``settings``) like
the runtime's mounted ``definition.json``. ``run`` needs no cluster: it executes the graph in this
process, prints one line per node start and finish (status and duration) and the run log to standard
error, and the run's output as JSON to standard output. HTTP nodes obey the same SSRF rules as in a
runtime (``TIDEFLOW_HTTP_ALLOWLIST``), and secrets come from ``TIDEFLOW_SECRET_<NAME>_<KEY>`` variables.
``validate`` reports the graph's and the schedule's issues on standard error and, for a Workflow with a
schedule, prints on standard output whether the schedule is active (and why not) and its next fire
times (``--next``, 5 by default) in the schedule's time zone and in UTC, from now or ``--from``.

Exit status: 0 the run completed (``validate``: no errors), 1 it failed or was cancelled (``validate``:
errors), 2 the command line or the file is unusable, 3 the run waits for an approval (pass ``--approve``
or ``--reject`` to decide every approval it reaches).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError

from tideflow.core import schedules
from tideflow.core.clock import parse_time
from tideflow.core.models import (
    RunPhase,
    Schedule,
    ScheduleType,
    TriggerType,
    Workflow,
    WorkflowDefinition,
    WorkflowSpec,
)
from tideflow.core.validation import validate_workflow
from tideflow.runtime.engine import (
    ProgressEvent,
    ProgressKind,
    RunResult,
    TriggerEvent,
    WorkflowDefinitionError,
    WorkflowEngine,
)
from tideflow.runtime.nodes.base import Services

__all__ = ["ManifestError", "ProgressPrinter", "load_manifest", "load_workflow", "main", "schedule_preview"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AWAITING = 3


class ManifestError(Exception):
    """The file cannot be read or holds no usable workflow; ``issues`` are ``(path, message)`` pairs."""

    def __init__(self, message: str, issues: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.issues = list(issues)


def _field_path(prefix: str, location: Sequence[int | str]) -> str:
    path = prefix
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _model_issues(exc: ValidationError, prefix: str) -> list[tuple[str, str]]:
    return [(_field_path(prefix, error["loc"]), error["msg"]) for error in exc.errors()]


def load_manifest(source: str, name: str | None = None) -> tuple[str, WorkflowDefinition]:
    """The workflow's name and definition from a manifest file (``-`` is standard input)."""
    workflow_name, definition, _ = load_workflow(source, name)
    return workflow_name, definition


def load_workflow(
    source: str, name: str | None = None
) -> tuple[str, WorkflowDefinition, WorkflowSpec | None]:
    """Like :func:`load_manifest`, plus the whole spec when the file holds a Workflow (not a bare one)."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source} is not valid YAML or JSON: {exc}") from None
    workflows = [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == "Workflow"]
    if workflows:
        if name is not None:
            workflows = [doc for doc in workflows if (doc.get("metadata") or {}).get("name") == name]
            if not workflows:
                raise ManifestError(f"{source} has no Workflow named {name!r}")
        try:
            workflow = Workflow.model_validate(workflows[0])
        except ValidationError as exc:
            raise ManifestError(f"{source}: the Workflow is malformed", _model_issues(exc, "")) from None
        workflow_name = str(workflow.metadata.get("name") or Path(source).stem or "workflow")
        return workflow_name, workflow.spec, workflow.spec
    bare = [doc for doc in documents if isinstance(doc, dict) and "nodes" in doc and "kind" not in doc]
    if not bare:
        raise ManifestError(f"{source} holds no Workflow (kind: Workflow) and no definition (nodes: [...])")
    keys = ("nodes", "connections", "settings")
    try:
        definition = WorkflowDefinition.model_validate({key: bare[0][key] for key in keys if key in bare[0]})
    except ValidationError as exc:
        raise ManifestError(f"{source}: the definition is malformed", _model_issues(exc, "")) from None
    return name or Path(source).stem or "workflow", definition, None


def _describe(schedule: Schedule) -> str:
    """The schedule in a few words: ``cron "0 9 * * 1-5" in Europe/Berlin``."""
    kind = schedule.type.value
    if schedule.type is ScheduleType.INTERVAL:
        return f"interval every {schedule.value} (UTC-anchored: the time zone does not apply)"
    what = f'{kind} "{schedule.value}"' if schedule.value else kind
    if schedule.time:
        what += f" at {schedule.time}"
    if schedule.days_of_week:
        what += f" on days {','.join(str(day) for day in schedule.days_of_week)} (0=Sunday)"
    if schedule.day_of_month is not None:
        what += f" on day {schedule.day_of_month}"
    return f"{what} in {schedule.timezone}"


def schedule_preview(spec: WorkflowSpec, *, valid: bool, after: dt.datetime, count: int) -> list[str]:
    """The lines ``tideflow validate`` prints about the schedule: its state, then the next fire times.

    Each fire time is shown in the schedule's time zone (with the UTC offset and the zone's
    abbreviation, which tell daylight saving time apart) and in UTC.
    """
    schedule = spec.schedule
    state = schedules.activity(schedule, state=spec.state.value, deployed=spec.deployed is True, valid=valid)
    if schedule is None or schedule.type is ScheduleType.MANUAL:
        return [f"schedule: none ({state.message})"]
    verdict = "active" if state.active else f"not active ({state.reason}): {state.message}"
    lines = [f"schedule: {_describe(schedule)}", f"schedule is {verdict}"]
    if schedules.check(schedule):
        return lines
    times = schedules.preview(schedule, after, count)
    zone = ZoneInfo(schedule.timezone)
    when = "" if state.active else " (once it is active)"
    lines.append(f"next {len(times)} fire time(s) after {_utc_text(after)}{when}:")
    for moment in times:
        local = moment.astimezone(zone)
        lines.append(
            f"  {local:%a %Y-%m-%d %H:%M:%S} {local.tzname()} ({_offset(local)})  =  {_utc_text(moment)}"
        )
    if len(times) < count:
        lines.append("  (no later fire time)")
    return lines


def _utc_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _offset(moment: dt.datetime) -> str:
    text = moment.strftime("%z")  # +0530
    return f"{text[:3]}:{text[3:]}"


class ProgressPrinter:
    """Prints one line per node start and finish, retries, waits and run-log lines, as they happen."""

    def __init__(self, stream: TextIO, *, started: float | None = None) -> None:
        self.stream = stream
        self.started = time.monotonic() if started is None else started

    def line(self, label: str, text: str) -> None:
        """Print one timestamped line."""
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:8.3f}s] {label:<10} {text}", file=self.stream, flush=True)

    def __call__(self, event: ProgressEvent) -> None:
        node = event.node
        if node is not None:
            what = f"{node.node_id} ({node.component_id})"
            if event.kind is ProgressKind.NODE_STARTED:
                self.line("start", what)
            elif event.kind is ProgressKind.NODE_RETRYING:
                self.line("retrying", f"{what} after attempt {node.attempts}")
            elif event.kind is ProgressKind.NODE_WAITING:
                self.line("waiting", f"{what} for a decision")
            elif event.kind is ProgressKind.NODE_FINISHED:
                duration = ""
                if node.started_at is not None and node.finished_at is not None:
                    duration = f" in {(node.finished_at - node.started_at).total_seconds():.3f}s"
                error = f": {node.error}" if node.error else ""
                self.line(node.status.value, f"{what}{duration}{error}")
        elif event.kind is ProgressKind.LOG and event.log is not None:
            source = f"{event.log.node_id}: " if event.log.node_id else ""
            self.line(f"log:{event.log.level}", f"{source}{event.log.message}")
        elif event.kind is ProgressKind.RESPONSE and event.response is not None:
            self.line("response", f"{event.response.status}")


async def _execute(
    engine: WorkflowEngine, trigger: TriggerEvent, printer: ProgressPrinter, approve: bool | None
) -> RunResult:
    try:
        result = await engine.run(trigger, on_progress=printer)
        for _ in range(100):
            if (
                result.phase is not RunPhase.AWAITING_INTERACTION
                or approve is None
                or result.snapshot is None
            ):
                break
            waiting = result.awaiting[0]
            printer.line("decision", f"{'approve' if approve else 'reject'} {waiting.node_id} (command line)")
            decision = {"approved": approve, "decidedBy": "tideflow run", "nodeId": waiting.node_id}
            result = await engine.resume(result.snapshot, decision, on_progress=printer)
        return result
    finally:
        await engine.services.aclose()


def _parse_inputs(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    text = raw
    if raw.startswith("@"):
        text = Path(raw[1:]).read_text(encoding="utf-8")
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("--input must be a JSON object")
    return value


def _run(args: argparse.Namespace) -> int:
    try:
        inputs = _parse_inputs(args.input)
    except (OSError, ValueError) as exc:
        print(f"tideflow run: --input: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        name, definition = load_manifest(args.file, args.name)
        engine = WorkflowEngine(
            definition,
            services=Services(),
            workflow=name,
            namespace="local",
            run_timeout_seconds=args.timeout,
        )
    except ManifestError as exc:
        _print_issues(str(exc), exc.issues, [])
        return EXIT_USAGE if not exc.issues else EXIT_FAILED
    except WorkflowDefinitionError as exc:
        issues = [(issue.path, issue.message) for issue in exc.issues]
        _print_issues("the workflow is invalid", issues, [])
        return EXIT_FAILED
    run_id = f"{name}-local-{secrets.token_hex(3)}"
    trigger = TriggerEvent(type=args.trigger_type, inputs=inputs, run_id=run_id)
    print(f"run {run_id} of {name} ({args.trigger_type})", file=sys.stderr)
    approve = True if args.approve else False if args.reject else None
    result = asyncio.run(_execute(engine, trigger, ProgressPrinter(sys.stderr), approve))
    summary = f"run {run_id} {result.phase.value} in {result.duration_seconds:.3f}s"
    if result.error:
        summary += f": {result.error}"
    print(summary, file=sys.stderr)
    if result.phase is RunPhase.AWAITING_INTERACTION:
        for waiting in result.awaiting:
            request = json.dumps(dict(waiting.request), default=str)
            print(f"awaiting {waiting.node_id} ({waiting.node_type}): {request}", file=sys.stderr)
        print("decide with --approve or --reject", file=sys.stderr)
        json.dump({"awaiting": [w.node_id for w in result.awaiting]}, sys.stdout, indent=2)
        print()
        return EXIT_AWAITING
    json.dump(result.output, sys.stdout, indent=2, default=str)
    print()
    return EXIT_OK if result.phase is RunPhase.COMPLETED else EXIT_FAILED


def _print_issues(
    headline: str, errors: Sequence[tuple[str, str]], warnings: Sequence[tuple[str, str]]
) -> None:
    if headline:
        print(headline, file=sys.stderr)
    for path, message in errors:
        print(f"error: {path}: {message}" if path else f"error: {message}", file=sys.stderr)
    for path, message in warnings:
        print(f"warning: {path}: {message}" if path else f"warning: {message}", file=sys.stderr)


def _validate(args: argparse.Namespace) -> int:
    try:
        after = parse_time(args.from_time) if args.from_time else dt.datetime.now(dt.UTC)
    except ValueError:
        print(f"tideflow validate: --from: not an RFC 3339 time: {args.from_time!r}", file=sys.stderr)
        return EXIT_USAGE
    try:
        _, definition, spec = load_workflow(args.file, args.name)
    except ManifestError as exc:
        _print_issues(str(exc), exc.issues, [])
        print(f"{len(exc.issues)} error(s)", file=sys.stderr)
        return EXIT_USAGE if not exc.issues else EXIT_FAILED
    result = validate_workflow(definition)
    errors = [(issue.path, issue.message) for issue in result.errors]
    warnings = [(issue.path, issue.message) for issue in result.warnings]
    if spec is not None and spec.schedule is not None:
        errors += [(f"spec.schedule.{field}", message) for field, message in schedules.issues(spec.schedule)]
    _print_issues("", errors, warnings)
    print(f"{args.file}: {len(errors)} error(s), {len(warnings)} warning(s)", file=sys.stderr)
    if spec is not None:
        valid = not result.errors
        for line in schedule_preview(spec, valid=valid, after=after, count=args.next):
            print(line)
    return EXIT_FAILED if errors else EXIT_OK


def _count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be between 0 and 1000")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tideflow", description="Tideflow workflow tools.")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what the engine does (debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="execute a Workflow manifest locally (no cluster)")
    run.add_argument("file", help="Workflow manifest (YAML or JSON); - reads standard input")
    run.add_argument("--input", "-i", help="the run's inputs: a JSON object, or @FILE holding one")
    run.add_argument(
        "--trigger-type",
        default=TriggerType.MANUAL.value,
        choices=[member.value for member in TriggerType],
        help="the trigger type of the run (default: manual)",
    )
    run.add_argument("--name", help="the Workflow to run when the file holds several")
    run.add_argument("--timeout", type=float, default=None, help="time limit of the whole run, in seconds")
    decision = run.add_mutually_exclusive_group()
    decision.add_argument("--approve", action="store_true", help="approve every approval the run reaches")
    decision.add_argument("--reject", action="store_true", help="reject every approval the run reaches")
    run.set_defaults(handler=_run)
    validate = commands.add_parser(
        "validate", help="print a Workflow manifest's errors and warnings, and its schedule's next fire times"
    )
    validate.add_argument("file", help="Workflow manifest (YAML or JSON); - reads standard input")
    validate.add_argument("--name", help="the Workflow to validate when the file holds several")
    validate.add_argument(
        "--next", type=_count, default=5, metavar="N", help="how many fire times to preview (default: 5)"
    )
    validate.add_argument(
        "--from",
        dest="from_time",
        metavar="TIME",
        help="preview the fire times after this RFC 3339 instant (default: now)",
    )
    validate.set_defaults(handler=_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tideflow`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    elif not logging.getLogger().handlers:
        logging.getLogger("tideflow").addHandler(logging.NullHandler())  # the progress view says it all
    handler = args.handler
    status: int = handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
