"""Pydantic models of the Tideflow custom resources, ``Workflow`` and ``WorkflowRun``.

They are the single source of the resources' shape: ``tideflow.core.crdgen`` generates the CRDs in ``crds/``
from them (field descriptions become what ``kubectl explain`` shows), and every component reads and writes
the resources through them. Attributes are snake_case in Python and camelCase on the wire (the alias);
both spellings are accepted on input, and dumps use camelCase. ``to_dict()`` gives the Kubernetes JSON form.

The models and the CRD schema accept and refuse the same documents (``tests/unit/core/test_crds.py``):

* scalars are strict (``"3"`` is not an integer, ``"true"`` is not a boolean), as in the API server;
* the cross-field rules are written once, as ``CelRule`` objects carrying both the CEL expression that goes
  into the CRD's ``x-kubernetes-validations`` and the equivalent Python check the model runs;
* timestamps must carry a UTC offset (RFC 3339).

One deliberate difference: unknown fields are refused by the models (``extra="forbid"``), while the API
server prunes them (or refuses them with ``kubectl --validate=strict``).
"""

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from tideflow.core import names

# --- Patterns and limits shared by the models, the CRDs and the docs ----------------------------------------

NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,63}$"
NODE_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,253}$"
PORT_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
TIME_OF_DAY_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
INTERVAL_PATTERN = r"^[1-9][0-9]* (second|seconds|minute|minutes|hour|hours|day|days)$"
CRON_PATTERN = r"^ *[^ ]+( +[^ ]+){4} *$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

WORKFLOW_NAME_MAX_LENGTH = 63
MAX_NODES = 500
MAX_CONNECTIONS = 2000
MAX_TAGS = 50
MAX_SHARED_WITH = 100
MAX_CONDITIONS = 32
MAX_STATUS_ISSUES = 100
"""At most this many ``status.errors``, and as many ``status.warnings``: the operator truncates the rest."""
MAX_ERROR_LENGTH = 8192
"""Longest ``error`` text of a run or of a node's log entry: writers truncate longer messages."""
MAX_ISSUE_MESSAGE_LENGTH = 1024
MAX_LIFECYCLE_WINDOWS = 50
MAX_SECRET_REFS = 20
MAX_REQUIRED_SCOPES = 200
SCOPE_PATTERN = r"^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*:[!-~]{1,253}$"
"""A required scope: ``<kind>:<verb>:<object>``, the object printable ASCII without spaces."""

FREE_FORM = "Free-form"  # how the descriptions of free-form fields start (the docs generator relies on it)

# --- Base ---------------------------------------------------------------------------------------------------


class KubeModel(BaseModel):
    """Base of every Tideflow resource model: camelCase aliases, both spellings in, no unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )

    def to_dict(self) -> dict[str, Any]:
        """The Kubernetes JSON form: camelCase keys, RFC 3339 timestamps, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class CelRule:
    """A cross-field rule, written once: the CEL rule for the CRD and the same check in Python."""

    rule: str
    message: str
    check: Callable[[Any], bool] | None
    """The Python equivalent of ``rule``; ``None`` for a transition rule (it needs the old object)."""
    field_path: str | None = None
    reason: str | None = None

    def to_schema(self) -> JsonDict:
        """The rule as an item of ``x-kubernetes-validations``."""
        out: JsonDict = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def _validations(rules: Iterable[CelRule]) -> JsonDict:
    return {"x-kubernetes-validations": [rule.to_schema() for rule in rules]}


_M = TypeVar("_M", bound=BaseModel)


def _enforce(model: _M, rules: Iterable[CelRule]) -> _M:
    failed = [rule.message for rule in rules if rule.check is not None and not rule.check(model)]
    if failed:
        raise ValueError("; ".join(failed))
    return model


def _duplicates(values: Iterable[object]) -> list[object]:
    return [value for value, count in Counter(values).items() if count > 1]


def _refuse_duplicates(values: Iterable[object], what: str) -> None:
    repeated = _duplicates(values)
    if repeated:
        listed = ", ".join(repr(value) for value in repeated)
        raise ValueError(f"{what} must be unique; repeated: {listed}")


RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
TIMESTAMP_MESSAGE = "must be an RFC 3339 date-time with a UTC offset, like 2024-05-01T02:00:00Z"


def _rfc3339(value: object) -> object:
    """Let through what the API server's ``format: date-time`` accepts: date, time and offset."""
    if isinstance(value, datetime) or (isinstance(value, str) and re.fullmatch(RFC3339_PATTERN, value)):
        return value
    raise ValueError(TIMESTAMP_MESSAGE)


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
"""A point in time with a UTC offset (a naive datetime is refused); RFC 3339 on the wire, where the CRD has
``format: date-time``. Numbers and offset-less strings are refused, as the API server refuses them."""

Quantity = Annotated[
    StrictInt | Annotated[str, Field(pattern=QUANTITY_PATTERN)],
    Field(
        description="A Kubernetes quantity: an integer, or a string like 500m, 256Mi or 1.5.",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    ),
]

# --- Workflow spec: the graph -------------------------------------------------------------------------------


class Position(KubeModel):
    """Where a node is drawn in the visual editor; it has no effect on execution."""

    x: StrictFloat = Field(default=0.0, description="Horizontal position on the editor's canvas.")
    y: StrictFloat = Field(default=0.0, description="Vertical position on the editor's canvas.")


class Node(KubeModel):
    """One step of the workflow graph: a trigger or an action taken from the node catalog."""

    id: str = Field(
        pattern=NODE_ID_PATTERN,
        max_length=63,
        description="Identifier of the node, unique within the workflow; connections and {{ }} expressions "
        "refer to the node by it (letters, digits, '_' and '-', at most 63).",
    )
    type: str = Field(
        pattern=NODE_TYPE_PATTERN,
        max_length=63,
        description="Catalog id of the component the node runs, e.g. manual_trigger, webhook_trigger, "
        "schedule_trigger, http_request, condition, transform, log.",
    )
    label: str | None = Field(
        default=None, max_length=200, description="Human-readable name shown in editors."
    )
    version: str | None = Field(
        default=None,
        max_length=64,
        description="Version of the catalog component; the newest the runtime knows when unset.",
    )
    position: Position = Field(
        default_factory=Position, description="Where the node is drawn in the visual editor."
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description=f"{FREE_FORM} configuration of the component (its keys depend on the node type); string "
        "values may contain {{ }} expressions.",
    )
    input_mappings: dict[str, Any] = Field(
        default_factory=dict,
        description=f"{FREE_FORM} mapping of the component's inputs to values or {{{{ }}}} expressions over "
        "the outputs of earlier nodes.",
    )
    pass_through_values: dict[str, Any] = Field(
        default_factory=dict,
        description=f"{FREE_FORM} literal values merged into the node's input (after the upstream outputs, "
        "before inputMappings, which win on the same key).",
    )
    timeout_seconds: StrictInt | None = Field(
        default=None,
        ge=1,
        le=86400,
        description="Time limit of one attempt of this node, in seconds; overrides settings.timeoutSeconds.",
    )
    max_retries: StrictInt | None = Field(
        default=None,
        ge=0,
        le=20,
        description="Retries of this node after a failed attempt; overrides settings.maxRetries.",
    )


class Connection(KubeModel):
    """A directed edge: the output port of one node feeds the input port of another."""

    id: str = Field(
        pattern=CONNECTION_ID_PATTERN,
        max_length=253,
        description="Identifier of the connection, unique within the workflow.",
    )
    source: str = Field(
        pattern=NODE_ID_PATTERN, max_length=63, description="id of the node the data comes from."
    )
    source_port: str = Field(
        default="output",
        pattern=PORT_PATTERN,
        max_length=32,
        description="Output port of the source node: output for most nodes, true or false for a condition.",
    )
    target: str = Field(
        pattern=NODE_ID_PATTERN, max_length=63, description="id of the node the data goes to."
    )
    target_port: str = Field(
        default="input", pattern=PORT_PATTERN, max_length=32, description="Input port of the target node."
    )


class WorkflowSettings(KubeModel):
    """Execution settings that apply to every node unless the node overrides them."""

    timeout_seconds: StrictInt = Field(
        default=300, ge=1, le=86400, description="Time limit of one attempt of a node, in seconds."
    )
    retry_on_failure: StrictBool = Field(
        default=False, description="Whether a failed node is retried (up to maxRetries times)."
    )
    max_retries: StrictInt = Field(
        default=3, ge=0, le=20, description="Retries of a failed node when retryOnFailure is true."
    )
    retry_backoff_seconds: StrictFloat = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="Delay before the first retry, in seconds; it doubles with each further retry.",
    )


# --- Workflow spec: schedule --------------------------------------------------------------------------------


class ScheduleType(StrEnum):
    """How a workflow's schedule fires."""

    MANUAL = "manual"
    INTERVAL = "interval"
    CRON = "cron"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class CatchupPolicy(StrEnum):
    """Which missed fire times are run late."""

    NONE = "none"
    LATEST = "latest"
    ALL = "all"


class ConcurrencyPolicy(StrEnum):
    """What happens when a scheduled run is due while an earlier run has not finished."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class DstPolicy(StrEnum):
    """How wall-clock fire times behave at daylight-saving transitions."""

    FIRE_ONCE = "FireOnce"
    FIRE_BOTH = "FireBoth"
    SKIP_MISSING = "SkipMissing"


class Catchup(KubeModel):
    """What to do with fire times that were missed (for example while the operator was down)."""

    policy: CatchupPolicy = Field(
        default=CatchupPolicy.NONE,
        description="none: missed fire times are skipped; latest: only the most recent missed one runs; "
        "all: every missed one runs, oldest first, up to maxRuns.",
    )
    max_runs: StrictInt = Field(
        default=10, ge=1, le=1000, description="Most missed runs started at once under the all policy."
    )
    window_seconds: StrictInt = Field(
        default=86400,
        ge=60,
        le=2592000,
        description="How far back (seconds) a missed fire time is still caught up; older ones are skipped.",
    )


def _schedule_is(schedule: "Schedule", *types: ScheduleType) -> bool:
    return schedule.type in types


_SCHEDULE_TYPE = "has(self.type) && self.type"
SCHEDULE_RULES: tuple[CelRule, ...] = (
    CelRule(
        rule=f"!({_SCHEDULE_TYPE} in ['interval', 'cron']) || has(self.value)",
        message="value is required when type is interval or cron",
        check=lambda s: not _schedule_is(s, ScheduleType.INTERVAL, ScheduleType.CRON) or s.value is not None,
        field_path=".value",
        reason="FieldValueRequired",
    ),
    CelRule(
        rule=f"!({_SCHEDULE_TYPE} in ['daily', 'weekly', 'monthly']) || has(self.time)",
        message="time is required when type is daily, weekly or monthly",
        check=lambda s: (
            not _schedule_is(s, ScheduleType.DAILY, ScheduleType.WEEKLY, ScheduleType.MONTHLY)
            or s.time is not None
        ),
        field_path=".time",
        reason="FieldValueRequired",
    ),
    CelRule(
        rule=f"!({_SCHEDULE_TYPE} == 'weekly') || (has(self.daysOfWeek) && size(self.daysOfWeek) > 0)",
        message="daysOfWeek must list at least one day when type is weekly",
        check=lambda s: not _schedule_is(s, ScheduleType.WEEKLY) or bool(s.days_of_week),
        field_path=".daysOfWeek",
        reason="FieldValueRequired",
    ),
    CelRule(
        rule=f"!({_SCHEDULE_TYPE} == 'monthly') || has(self.dayOfMonth)",
        message="dayOfMonth is required when type is monthly",
        check=lambda s: not _schedule_is(s, ScheduleType.MONTHLY) or s.day_of_month is not None,
        field_path=".dayOfMonth",
        reason="FieldValueRequired",
    ),
    CelRule(
        rule=f"!({_SCHEDULE_TYPE} == 'interval') || !has(self.value) "
        f"|| self.value.matches('{INTERVAL_PATTERN}')",
        message="value of an interval schedule must be a positive whole number and a unit "
        "(second, minute, hour or day, singular or plural), like '30 seconds', '5 minutes' or '1 hour'",
        check=lambda s: (
            not _schedule_is(s, ScheduleType.INTERVAL)
            or s.value is None
            or re.fullmatch(INTERVAL_PATTERN, s.value) is not None
        ),
        field_path=".value",
        reason="FieldValueInvalid",
    ),
    CelRule(
        rule=f"!({_SCHEDULE_TYPE} == 'cron') || !has(self.value) || self.value.matches('{CRON_PATTERN}')",
        message="value of a cron schedule must have exactly five space-separated fields "
        "(minute, hour, day of month, month, day of week), like '0 2 * * 1-5'",
        check=lambda s: (
            not _schedule_is(s, ScheduleType.CRON)
            or s.value is None
            or re.fullmatch(CRON_PATTERN, s.value) is not None
        ),
        field_path=".value",
        reason="FieldValueInvalid",
    ),
)


class Schedule(KubeModel):
    """When the operator fires the workflow on its own, by creating WorkflowRuns with triggerType schedule."""

    model_config = ConfigDict(json_schema_extra=_validations(SCHEDULE_RULES))

    type: ScheduleType = Field(
        default=ScheduleType.MANUAL,
        description="manual: never fires on its own; interval: every value (e.g. '5 minutes'); cron: on the "
        "five-field cron expression in value; daily, weekly, monthly: at time, on daysOfWeek or dayOfMonth.",
    )
    value: str | None = Field(
        default=None,
        max_length=128,
        description="For interval, a positive whole number and a unit: '30 seconds', '5 minutes', '1 hour', "
        "'2 days'. For cron, five space-separated fields: minute hour day-of-month month day-of-week.",
    )
    time: str | None = Field(
        default=None,
        pattern=TIME_OF_DAY_PATTERN,
        max_length=5,
        description="Time of day, HH:MM (24-hour clock) in timezone, for daily, weekly and monthly.",
    )
    days_of_week: (
        list[Annotated[StrictInt, Field(ge=0, le=6, description="A day: 0=Sunday .. 6=Saturday.")]] | None
    ) = Field(
        default=None,
        max_length=7,
        description="Days a weekly schedule fires on, 0=Sunday .. 6=Saturday, each at most once.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    day_of_month: StrictInt | None = Field(
        default=None,
        ge=1,
        le=31,
        description="Day a monthly schedule fires on; months without that day are skipped, as in cron.",
    )
    timezone: str = Field(
        default="UTC",
        pattern=TIMEZONE_PATTERN,
        max_length=64,
        description="IANA time zone of time and of cron expressions, e.g. Europe/Berlin; an unknown zone "
        "makes the workflow Valid=False.",
    )
    catchup: Catchup = Field(default_factory=Catchup, description="What to do with missed fire times.")
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.ALLOW,
        description="When a run is due while an earlier scheduled run is still Pending or Running: Allow "
        "starts "
        "it anyway, Forbid skips it, Replace cancels the earlier run and starts the new one.",
    )
    dst_policy: DstPolicy = Field(
        default=DstPolicy.FIRE_ONCE,
        description="At daylight-saving transitions: FireOnce fires a wall-clock time that does not exist "
        "once, at the next valid instant, and a time that occurs twice once, at its first occurrence; "
        "FireBoth also "
        "fires a repeated time at both occurrences; SkipMissing skips a time that does not exist.",
    )

    @field_validator("days_of_week")
    @classmethod
    def _unique_days(cls, days: list[int] | None) -> list[int] | None:
        if days is not None:
            _refuse_duplicates(days, "daysOfWeek")
        return days

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        return _enforce(self, SCHEDULE_RULES)


# --- Workflow spec: lifecycle and runtime -------------------------------------------------------------------


class LifecycleType(StrEnum):
    """When the workflow's runtime runs."""

    ALWAYS_ON = "always-on"
    IDLE_SHUTDOWN = "idle-shutdown"
    ON_DEMAND = "on-demand"
    SCHEDULED_WINDOW = "scheduled-window"


WINDOW_RULES: tuple[CelRule, ...] = (
    CelRule(
        rule="!has(self.startTime) || !has(self.endTime) || self.startTime != self.endTime",
        message="startTime and endTime must differ (an endTime before startTime crosses midnight)",
        check=lambda w: w.start_time != w.end_time,
        field_path=".endTime",
        reason="FieldValueInvalid",
    ),
)


class LifecycleWindow(KubeModel):
    """A weekly time window during which the runtime runs."""

    model_config = ConfigDict(json_schema_extra=_validations(WINDOW_RULES))

    days: list[Annotated[StrictInt, Field(ge=0, le=6, description="A day: 0=Sunday .. 6=Saturday.")]] = Field(
        min_length=1,
        max_length=7,
        description="Days the window opens on, 0=Sunday .. 6=Saturday, each at most once.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    start_time: str = Field(
        pattern=TIME_OF_DAY_PATTERN, max_length=5, description="When the window opens, HH:MM (24-hour clock)."
    )
    end_time: str = Field(
        pattern=TIME_OF_DAY_PATTERN,
        max_length=5,
        description="When the window closes, HH:MM (24-hour clock); before startTime means the window "
        "crosses "
        "midnight and closes the next day.",
    )

    @field_validator("days")
    @classmethod
    def _unique_days(cls, days: list[int]) -> list[int]:
        _refuse_duplicates(days, "days")
        return days

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        return _enforce(self, WINDOW_RULES)


class LifecycleSchedule(KubeModel):
    """The weekly windows of a scheduled-window lifecycle."""

    timezone: str = Field(
        default="UTC",
        pattern=TIMEZONE_PATTERN,
        max_length=64,
        description="IANA time zone the windows' times are in, e.g. America/New_York.",
    )
    windows: list[LifecycleWindow] = Field(
        default_factory=list,
        max_length=MAX_LIFECYCLE_WINDOWS,
        description="Windows during which the runtime runs; it is stopped outside all of them.",
    )


_LIFECYCLE_TYPE = "has(self.type) && self.type"
LIFECYCLE_RULES: tuple[CelRule, ...] = (
    CelRule(
        rule=f"!({_LIFECYCLE_TYPE} == 'idle-shutdown') || has(self.idleTimeoutMinutes)",
        message="idleTimeoutMinutes is required when type is idle-shutdown",
        check=lambda lc: lc.type != LifecycleType.IDLE_SHUTDOWN or lc.idle_timeout_minutes is not None,
        field_path=".idleTimeoutMinutes",
        reason="FieldValueRequired",
    ),
    CelRule(
        rule=f"!({_LIFECYCLE_TYPE} == 'scheduled-window') || "
        "(has(self.schedule) && has(self.schedule.windows) && size(self.schedule.windows) > 0)",
        message="schedule with at least one window is required when type is scheduled-window",
        check=lambda lc: (
            lc.type != LifecycleType.SCHEDULED_WINDOW or bool(lc.schedule and lc.schedule.windows)
        ),
        field_path=".schedule",
        reason="FieldValueRequired",
    ),
)


class Lifecycle(KubeModel):
    """When the operator runs the workflow's runtime, and when it scales it to zero."""

    model_config = ConfigDict(json_schema_extra=_validations(LIFECYCLE_RULES))

    type: LifecycleType = Field(
        default=LifecycleType.ALWAYS_ON,
        description="always-on: the runtime runs while the workflow is deployed; idle-shutdown: it stops "
        "after idleTimeoutMinutes without activity and starts again when a trigger or run arrives; "
        "on-demand: it runs "
        "only while runs wait or execute; scheduled-window: it runs only inside the windows of schedule.",
    )
    idle_timeout_minutes: StrictInt | None = Field(
        default=None,
        ge=5,
        le=1440,
        description="Minutes without activity after which an idle-shutdown runtime is stopped.",
    )
    schedule: LifecycleSchedule | None = Field(
        default=None, description="Windows of a scheduled-window lifecycle."
    )

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        return _enforce(self, LIFECYCLE_RULES)


class ResourceRequirements(KubeModel):
    """Compute resources of the runtime container, as in a Pod's container spec."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        description="Minimum resources the runtime container needs, by resource name (cpu, memory, ...).",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        description="Maximum resources the runtime container may use, by resource name (cpu, memory, ...).",
    )


class SecretRef(KubeModel):
    """A Secret in the workflow's namespace."""

    name: str = Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253, description="Name of the Secret.")


class RuntimeSpec(KubeModel):
    """How the workflow's runtime pod is run."""

    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements,
        description="Compute resources of the runtime container; the chart's defaults apply when empty.",
    )
    secret_refs: list[SecretRef] = Field(
        default_factory=list,
        max_length=MAX_SECRET_REFS,
        description="Secrets whose keys are exposed to the runtime as environment variables.",
    )


# --- Workflow -----------------------------------------------------------------------------------------------


class WorkflowState(StrEnum):
    """Editorial state of a workflow."""

    DRAFT = "Draft"
    ACTIVE = "Active"
    PAUSED = "Paused"
    ARCHIVED = "Archived"


class WorkflowDefinition(KubeModel):
    """The executable part of a workflow: its graph and its execution settings."""

    nodes: list[Node] = Field(
        default_factory=list,
        max_length=MAX_NODES,
        description="The steps of the workflow; ids are unique.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )
    connections: list[Connection] = Field(
        default_factory=list,
        max_length=MAX_CONNECTIONS,
        description="Directed edges between the nodes' ports; ids are unique.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )
    settings: WorkflowSettings = Field(
        default_factory=WorkflowSettings, description="Execution settings for every node."
    )

    @field_validator("nodes")
    @classmethod
    def _unique_node_ids(cls, nodes: list[Node]) -> list[Node]:
        _refuse_duplicates((node.id for node in nodes), "node ids")
        return nodes

    @field_validator("connections")
    @classmethod
    def _unique_connection_ids(cls, connections: list[Connection]) -> list[Connection]:
        _refuse_duplicates((connection.id for connection in connections), "connection ids")
        return connections

    def node(self, node_id: str) -> Node | None:
        """The node with this id, if there is one."""
        return next((node for node in self.nodes if node.id == node_id), None)


class WorkflowSpec(WorkflowDefinition):
    """The desired state of a Workflow: its graph, how it is triggered and how its runtime is run."""

    display_name: str | None = Field(
        default=None,
        max_length=253,
        description="Human-readable name of the workflow (metadata.name is a DNS label).",
    )
    description: str | None = Field(default=None, max_length=4096, description="What the workflow does.")
    tags: list[Annotated[str, Field(min_length=1, max_length=63, description="A tag.")]] = Field(
        default_factory=list, max_length=MAX_TAGS, description="Free labels for finding the workflow."
    )
    owner: str | None = Field(default=None, max_length=253, description="The user who owns the workflow.")
    shared_with: list[Annotated[str, Field(min_length=1, max_length=253, description="A user or group.")]] = (
        Field(
            default_factory=list,
            max_length=MAX_SHARED_WITH,
            description="Users and groups the owner shares the workflow with.",
        )
    )
    is_public: StrictBool = Field(default=False, description="Whether everyone in the namespace may see it.")
    is_template: StrictBool = Field(default=False, description="Whether it is offered as a template.")
    state: WorkflowState = Field(
        default=WorkflowState.DRAFT,
        description="Editorial state: Draft, Active, Paused (schedules do not fire) or Archived.",
    )
    schedule: Schedule | None = Field(default=None, description="When the workflow fires on its own.")
    lifecycle: Lifecycle = Field(
        default_factory=Lifecycle, description="When the runtime runs and when it is scaled to zero."
    )
    runtime: RuntimeSpec | None = Field(default=None, description="How the runtime pod is run.")
    deployed: StrictBool = Field(
        default=False,
        description="Whether the operator runs a runtime for the workflow (a Deployment and a Service).",
    )
    replicas: StrictInt = Field(
        default=1,
        ge=0,
        le=20,
        description="Runtime replicas while the lifecycle policy has the runtime running (the scale "
        "subresource's spec path).",
    )
    required_scopes: (
        list[
            Annotated[
                str,
                Field(
                    pattern=SCOPE_PATTERN,
                    max_length=300,
                    description="A scope: secrets:read:<Secret name> or http:request:<host>.",
                ),
            ]
        ]
        | None
    ) = Field(
        default=None,
        max_length=MAX_REQUIRED_SCOPES,
        description="What the workflow's nodes reach outside it, as the API's compute-scopes derives it: "
        "secrets:read:<name> for each Secret a node's config references, http:request:<host> for each host "
        "an HTTP node calls (* for the part a template decides). Informational: nothing is granted from it "
        "(Secrets reach the runtime only through runtime.secretRefs). Unset until computed.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @field_validator("required_scopes")
    @classmethod
    def _unique_scopes(cls, scopes: list[str] | None) -> list[str] | None:
        if scopes is not None:
            _refuse_duplicates(scopes, "requiredScopes")
        return scopes


class ConditionStatus(StrEnum):
    """Status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(KubeModel):
    """One aspect of the object's state, in the Kubernetes metav1.Condition convention."""

    type: str = Field(
        pattern=CONDITION_TYPE_PATTERN,
        max_length=316,
        description="Type of the condition, e.g. Ready or Valid.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="CamelCase reason for the condition's last transition.",
    )
    message: str = Field(max_length=32768, description="Human-readable details of the transition.")
    last_transition_time: Timestamp = Field(description="When the status last changed.")
    observed_generation: StrictInt | None = Field(
        default=None, ge=0, description="metadata.generation the condition was set from."
    )


def _unique_condition_types(conditions: list[Condition] | None) -> list[Condition] | None:
    if conditions is not None:
        _refuse_duplicates((condition.type for condition in conditions), "condition types")
    return conditions


class DeploymentStatus(StrEnum):
    """State of the workflow's runtime."""

    NOT_DEPLOYED = "NotDeployed"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPED = "Stopped"
    FAILED = "Failed"


class ValidationIssue(KubeModel):
    """A problem the operator found in the workflow's definition."""

    path: str = Field(
        max_length=512, description="Field path of the problem, e.g. spec.connections[2].target."
    )
    message: str = Field(max_length=MAX_ISSUE_MESSAGE_LENGTH, description="What is wrong.")
    node_id: str | None = Field(default=None, max_length=253, description="id of the node concerned, if any.")


class WorkflowStatus(KubeModel):
    """What the operator observed about the workflow; written by the operator only."""

    observed_generation: StrictInt | None = Field(
        default=None, ge=0, description="metadata.generation the status was computed from."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=MAX_CONDITIONS,
        description="Current conditions, one per type (Ready, Valid, ...).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    deployment_status: DeploymentStatus | None = Field(
        default=None, description="State of the runtime: NotDeployed, Starting, Running, Stopped or Failed."
    )
    replicas: StrictInt | None = Field(
        default=None,
        ge=0,
        description="Runtime pods currently running (the scale subresource's status path).",
    )
    ready_replicas: StrictInt | None = Field(default=None, ge=0, description="Runtime pods that are ready.")
    selector: str | None = Field(
        default=None,
        max_length=1024,
        description="Label selector of the runtime pods, for the scale subresource.",
    )
    endpoint: str | None = Field(
        default=None, max_length=2048, description="In-cluster URL of the runtime's Service."
    )
    webhook_path: str | None = Field(
        default=None,
        max_length=1024,
        description="Path under the API at which the workflow's webhooks are served.",
    )
    next_run_at: Timestamp | None = Field(default=None, description="When the schedule fires next.")
    last_run_at: Timestamp | None = Field(default=None, description="When the last run was created.")
    last_activity_at: Timestamp | None = Field(
        default=None, description="When the runtime last reported activity (drives idle-shutdown)."
    )
    stopped_reason: str | None = Field(
        default=None, max_length=1024, description="Why the runtime is stopped, when it is."
    )
    schedule_checkpoint: Timestamp | None = Field(
        default=None,
        description="Every fire time of the schedule up to this instant has been handled (a run created "
        "or the skip recorded); the operator resumes from here after a restart or a pause.",
    )
    next_transition_at: Timestamp | None = Field(
        default=None,
        description="When the lifecycle policy will next start or stop the runtime on its own "
        "(a scheduled window opening or closing, an idle timeout running out).",
    )
    errors: list[ValidationIssue] | None = Field(
        default=None,
        max_length=MAX_STATUS_ISSUES,
        description="Problems that make the workflow invalid (it is then Valid=False).",
    )
    warnings: list[ValidationIssue] | None = Field(
        default=None, max_length=MAX_STATUS_ISSUES, description="Problems that do not prevent running."
    )

    _unique_conditions = field_validator("conditions")(_unique_condition_types)


WORKFLOW_NAME_MESSAGE = (
    f"metadata.name of a Workflow must be a DNS label of at most {WORKFLOW_NAME_MAX_LENGTH} characters "
    "(lower-case letters, digits and '-', starting and ending with a letter or digit)"
)


class Workflow(KubeModel):
    """A workflow: a graph of trigger and action nodes that Tideflow deploys, schedules and runs."""

    api_version: Literal["tideflow.io/v1alpha1"] = Field(
        default=names.API_VERSION, description="Versioned schema of this object."
    )
    kind: Literal["Workflow"] = Field(default=names.WORKFLOW_KIND, description="Kind of this object.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: WorkflowSpec = Field(description="The desired state of the workflow.")
    status: WorkflowStatus | None = Field(default=None, description="What the operator observed.")

    @field_validator("metadata")
    @classmethod
    def _name_is_a_dns_label(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        name = metadata.get("name")
        if name is not None and (
            not isinstance(name, str)
            or len(name) > WORKFLOW_NAME_MAX_LENGTH
            or re.fullmatch(DNS_LABEL_PATTERN, name) is None
        ):
            raise ValueError(WORKFLOW_NAME_MESSAGE)
        return metadata


# --- WorkflowRun --------------------------------------------------------------------------------------------


WORKFLOW_REF_RULES: tuple[CelRule, ...] = (
    CelRule(
        rule="self.name == oldSelf.name",
        message="workflowRef is immutable",
        check=None,
        reason="FieldValueForbidden",
    ),
)


class WorkflowRef(KubeModel):
    """The Workflow a run executes, in the run's namespace."""

    model_config = ConfigDict(json_schema_extra=_validations(WORKFLOW_REF_RULES))

    name: str = Field(
        pattern=DNS_LABEL_PATTERN,
        max_length=WORKFLOW_NAME_MAX_LENGTH,
        description="metadata.name of the Workflow.",
    )


class TriggerType(StrEnum):
    """What started a run."""

    MANUAL = "manual"
    API = "api"
    WEBHOOK = "webhook"
    SCHEDULE = "schedule"
    QUEUE = "queue"
    EMAIL = "email"
    EVENT = "event"


class WorkflowRunSpec(KubeModel):
    """One requested execution of a workflow; created before anything executes and not changed after."""

    workflow_ref: WorkflowRef = Field(description="The Workflow to run.")
    trigger_type: TriggerType = Field(
        default=TriggerType.MANUAL,
        description="What started the run: manual, api, webhook, schedule, queue, email or event.",
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, description=f"{FREE_FORM} input data of the run, given to the trigger node."
    )
    priority: StrictInt = Field(
        default=0,
        ge=-1000,
        le=1000,
        description="Runs with a higher priority are claimed first; equal priorities run oldest first.",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Client-chosen key: a second request with the same key returns this run instead of "
        "starting another.",
    )
    scheduled_time: Timestamp | None = Field(
        default=None, description="The fire time a scheduled run was created for."
    )
    definition: WorkflowDefinition | None = Field(
        default=None,
        description="A definition to run instead of the Workflow's own (a draft run from an editor).",
    )


class RunPhase(StrEnum):
    """Where a run is in its life; a run without a phase is Pending."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    AWAITING_INTERACTION = "AwaitingInteraction"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        """Whether the run has ended and its phase will not change any more."""
        return self in (RunPhase.COMPLETED, RunPhase.FAILED, RunPhase.CANCELLED)


class NodeRunStatus(StrEnum):
    """Where one node is in a run."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class NodeRunLog(KubeModel):
    """The log of one node in a run."""

    node_id: str = Field(pattern=NODE_ID_PATTERN, max_length=63, description="id of the node.")
    component_id: str | None = Field(
        default=None, max_length=63, description="Catalog id of the node's component (its type)."
    )
    status: NodeRunStatus = Field(
        default=NodeRunStatus.PENDING,
        description="pending, running, completed, failed, skipped (not on the path taken) or cancelled.",
    )
    attempts: StrictInt = Field(default=0, ge=0, description="Attempts made so far, retries included.")
    output: Any = Field(
        default=None,
        description=f"{FREE_FORM} output of the node, any JSON value; truncated with a marker when large.",
    )
    error: str | None = Field(
        default=None, max_length=MAX_ERROR_LENGTH, description="Why the node failed, when it did."
    )
    started_at: Timestamp | None = Field(default=None, description="When the first attempt started.")
    finished_at: Timestamp | None = Field(default=None, description="When the node finished.")


class WorkflowRunStatus(KubeModel):
    """What happened to the run; written by the runtime that claimed it (and by the operator)."""

    phase: RunPhase | None = Field(
        default=None,
        description="Pending (also when unset), Running, Completed, Failed, AwaitingInteraction, Cancelled.",
    )
    started_at: Timestamp | None = Field(default=None, description="When execution started.")
    completed_at: Timestamp | None = Field(default=None, description="When the run finished.")
    duration_seconds: StrictFloat | None = Field(
        default=None, ge=0, description="Execution time, in seconds, from startedAt to completedAt."
    )
    error: str | None = Field(default=None, max_length=MAX_ERROR_LENGTH, description="Why the run failed.")
    output: Any = Field(
        default=None,
        description=f"{FREE_FORM} output of the run, any JSON value; truncated with a marker when large.",
    )
    nodes: list[NodeRunLog] | None = Field(
        default=None, max_length=MAX_NODES, description="Per-node log, in execution order."
    )
    claimed_by: str | None = Field(
        default=None, max_length=253, description="Name of the runtime pod executing the run."
    )
    claimed_at: Timestamp | None = Field(default=None, description="When that pod claimed it.")
    observed_generation: StrictInt | None = Field(
        default=None, ge=0, description="metadata.generation the status was written for."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=MAX_CONDITIONS,
        description="Current conditions, one per type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )

    _unique_conditions = field_validator("conditions")(_unique_condition_types)


class WorkflowRun(KubeModel):
    """One execution of a workflow, created before anything executes; its status records what happened."""

    api_version: Literal["tideflow.io/v1alpha1"] = Field(
        default=names.API_VERSION, description="Versioned schema of this object."
    )
    kind: Literal["WorkflowRun"] = Field(default=names.WORKFLOWRUN_KIND, description="Kind of this object.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: WorkflowRunSpec = Field(description="The requested execution.")
    status: WorkflowRunStatus | None = Field(default=None, description="What happened to the run.")

    @property
    def phase(self) -> RunPhase:
        """The run's phase; Pending while no status has been written."""
        if self.status is None or self.status.phase is None:
            return RunPhase.PENDING
        return self.status.phase


__all__ = [
    "Catchup",
    "CatchupPolicy",
    "CelRule",
    "ConcurrencyPolicy",
    "Condition",
    "ConditionStatus",
    "Connection",
    "DeploymentStatus",
    "DstPolicy",
    "KubeModel",
    "Lifecycle",
    "LifecycleSchedule",
    "LifecycleType",
    "LifecycleWindow",
    "Node",
    "NodeRunLog",
    "NodeRunStatus",
    "Position",
    "Quantity",
    "ResourceRequirements",
    "RunPhase",
    "RuntimeSpec",
    "Schedule",
    "ScheduleType",
    "SecretRef",
    "Timestamp",
    "TriggerType",
    "ValidationIssue",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowRef",
    "WorkflowRun",
    "WorkflowRunSpec",
    "WorkflowRunStatus",
    "WorkflowSettings",
    "WorkflowSpec",
    "WorkflowState",
    "WorkflowStatus",
]
