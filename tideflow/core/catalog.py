"""The node catalog: what each node type is, which ports it has and what its ``config`` may contain.

This is metadata only, shared by the API (to list and check node types), the operator (to validate a
Workflow and to find the Secrets it reads) and the runtime (whose executors in
``tideflow.runtime.nodes`` implement the types listed here). Each type's ``config`` is described by
a JSON Schema; :func:`check_config` checks a config against it with the small validator below, which
implements exactly the keywords these schemas use (``SUPPORTED_KEYWORDS``) so the runtime needs no
JSON Schema library. ``docs/nodes.md`` is the user-facing reference for the same facts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "CATALOG",
    "SUPPORTED_KEYWORDS",
    "Category",
    "ConfigIssue",
    "NodeType",
    "SecretKeyRef",
    "apply_defaults",
    "check_config",
    "check_schema",
    "format_field_path",
    "get_node_type",
    "secret_env_prefix",
    "secret_env_var",
    "secret_references",
]


class Category(StrEnum):
    """What kind of step a node type is."""

    TRIGGER = "trigger"
    ACTION = "action"
    LOGIC = "logic"


@dataclass(frozen=True)
class NodeType:
    """One entry of the catalog."""

    id: str
    category: Category
    label: str
    description: str
    inputs: tuple[str, ...]
    """Input port names; triggers have none."""
    outputs: tuple[str, ...]
    """Output port names, e.g. ``("output",)``, ``("true", "false")`` for a condition."""
    config_required: bool
    """Whether a node of this type is useless without configuration (an empty config is an error)."""
    config_schema: Mapping[str, Any]
    """JSON Schema (draft 2020-12 subset, see ``SUPPORTED_KEYWORDS``) of the node's ``config``."""
    trigger_types: tuple[str, ...] = ()
    """For triggers: the run trigger types (``WorkflowRun.spec.triggerType``) that fire this node."""
    expression_keys: frozenset[str] = field(default_factory=frozenset)
    """Config keys holding bare expressions, evaluated by the executor: the engine does not render them."""
    version: str = "1"

    @property
    def is_trigger(self) -> bool:
        return self.category is Category.TRIGGER

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the API serves (camelCase keys)."""
        return {
            "id": self.id,
            "category": self.category.value,
            "label": self.label,
            "description": self.description,
            "version": self.version,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "configRequired": self.config_required,
            "configSchema": _thaw(self.config_schema),
            "triggerTypes": list(self.trigger_types),
        }


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------

_SECRET_REF: Final[dict[str, Any]] = {
    "type": "object",
    "description": "A key of a Secret in the workflow's namespace.",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253, "description": "Name of the Secret."},
        "key": {"type": "string", "minLength": 1, "maxLength": 253, "description": "Key inside the Secret."},
    },
    "required": ["name", "key"],
    "additionalProperties": False,
}
_HEADERS: Final[dict[str, Any]] = {
    "type": "object",
    "description": "Header names and values.",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
_SCALAR: Final[dict[str, Any]] = {"type": ["string", "number", "boolean"]}
HTTP_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
CONDITION_OPERATORS: Final = (
    "equals",
    "not_equals",
    "greater_than",
    "greater_than_or_equal",
    "less_than",
    "less_than_or_equal",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "in",
    "not_in",
    "is_empty",
    "is_not_empty",
    "exists",
    "not_exists",
)
LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def _trigger_schema(description: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    # Trigger configs are read by the runtime and the operator, not by the engine: unknown keys are kept.
    return {"type": "object", "description": description, "properties": properties or {}}


def _auth_form(kind: str, title: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "properties": {"type": {"const": kind}, **extra, "secretRef": _SECRET_REF},
        "required": ["type", *extra, "secretRef"],
        "additionalProperties": False,
    }


_HTTP_REQUEST_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "method": {"enum": list(HTTP_METHODS), "default": "GET", "description": "HTTP method."},
        "url": {"type": "string", "minLength": 1, "maxLength": 8192, "description": "http or https URL."},
        "headers": _HEADERS,
        "query": {
            "type": "object",
            "description": "Query parameters added to the URL; a list repeats the parameter.",
            "additionalProperties": {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
        },
        "body": {"description": "Request body: a string is sent as is, anything else as JSON."},
        "auth": {
            "description": "Credentials taken from a Secret.",
            "oneOf": [
                _auth_form("bearer", "bearer token", {}),
                _auth_form("basic", "basic auth", {"username": {"type": "string"}}),
                _auth_form("header", "API key header", {"header": {"type": "string", "minLength": 1}}),
            ],
        },
        "timeoutSeconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 3600,
            "default": 30,
            "description": "Time limit of the request (connect, send, wait and read).",
        },
        "responseType": {
            "enum": ["auto", "json", "text"],
            "default": "auto",
            "description": "How the response body is parsed; auto parses JSON content types as JSON.",
        },
        "failOnStatus": {
            "type": "boolean",
            "default": True,
            "description": "Whether a response status of 400 or more fails the node.",
        },
        "followRedirects": {
            "type": "boolean",
            "default": True,
            "description": "Whether redirects are followed.",
        },
        "maxRedirects": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10,
            "default": 5,
            "description": "Most redirects followed for one request.",
        },
    },
    "required": ["url"],
    "additionalProperties": False,
}

_CONDITION_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "field": {"type": "string", "minLength": 1, "description": "Expression giving the value to test."},
        "operator": {"enum": list(CONDITION_OPERATORS), "description": "How the value is tested."},
        "value": {"description": "Value compared with (templated); unused by the unary operators."},
        "expression": {"type": "string", "minLength": 1, "description": "Expression whose truth decides."},
    },
    "additionalProperties": False,
    "oneOf": [
        {"title": "an expression", "required": ["expression"]},
        {"title": "a field and an operator", "required": ["field", "operator"]},
    ],
}

_TRANSFORM_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "set": {"type": "object", "description": "Output keys and their (templated) values."},
        "map": {
            "type": "object",
            "description": "Output keys and the expression, over the node's input, they copy.",
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        "includeInput": {
            "type": "boolean",
            "default": False,
            "description": "Whether the output starts from the node's input.",
        },
    },
    "additionalProperties": False,
    "anyOf": [{"title": "set", "required": ["set"]}, {"title": "map", "required": ["map"]}],
}

_DELAY_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "seconds": {"type": "number", "minimum": 0, "maximum": 86400, "description": "How long to wait."},
    },
    "required": ["seconds"],
    "additionalProperties": False,
}

_LOG_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "The (templated) message."},
        "level": {"enum": list(LOG_LEVELS), "default": "info", "description": "Severity."},
    },
    "required": ["message"],
    "additionalProperties": False,
}

_RESPOND_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "status": {
            "type": "integer",
            "minimum": 100,
            "maximum": 599,
            "default": 200,
            "description": "Status.",
        },
        "headers": _HEADERS,
        "body": {"description": "Response body (templated): a string is sent as is, anything else as JSON."},
    },
    "additionalProperties": False,
}

_APPROVAL_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "What the approver is asked (templated)."},
        "approvers": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "Users or groups asked to decide.",
        },
    },
    "additionalProperties": False,
}


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _trigger(
    type_id: str, label: str, description: str, trigger_types: tuple[str, ...], **props: Any
) -> NodeType:
    return NodeType(
        id=type_id,
        category=Category.TRIGGER,
        label=label,
        description=description,
        inputs=(),
        outputs=("output",),
        config_required=False,
        config_schema=_freeze(_trigger_schema(description, props)),
        trigger_types=trigger_types,
    )


def _node(
    type_id: str,
    category: Category,
    label: str,
    description: str,
    schema: dict[str, Any],
    *,
    required: bool,
    outputs: tuple[str, ...] = ("output",),
    expression_keys: frozenset[str] = frozenset(),
) -> NodeType:
    return NodeType(
        id=type_id,
        category=category,
        label=label,
        description=description,
        inputs=("input",),
        outputs=outputs,
        config_required=required,
        config_schema=_freeze(schema),
        expression_keys=expression_keys,
    )


_NODE_TYPES: Final = (
    _trigger(
        "manual_trigger", "Manual trigger", "Starts a run on request (UI, CLI or API).", ("manual", "api")
    ),
    _trigger(
        "webhook_trigger",
        "Webhook trigger",
        "Starts a run when an HTTP request arrives at the workflow's webhook.",
        ("webhook",),
        path={"type": "string", "maxLength": 253, "description": "Path under the workflow's webhook URL."},
        method={"enum": list(HTTP_METHODS), "description": "Accepted HTTP method; any when unset."},
    ),
    _trigger("schedule_trigger", "Schedule trigger", "Starts a run when spec.schedule fires.", ("schedule",)),
    _trigger(
        "queue_trigger",
        "Queue trigger",
        "Starts a run for a message taken from a queue.",
        ("queue",),
        queue={"type": "string", "minLength": 1, "description": "Name of the queue."},
    ),
    _trigger(
        "email_trigger",
        "Email trigger",
        "Starts a run for a received email.",
        ("email",),
        address={"type": "string", "minLength": 1, "description": "Receiving address."},
    ),
    _trigger(
        "event_trigger",
        "Event trigger",
        "Starts a run for a platform or external event.",
        ("event",),
        eventType={"type": "string", "minLength": 1, "description": "Type of event that fires."},
        source={"type": "string", "minLength": 1, "description": "Source the event must come from."},
    ),
    _node(
        "http_request",
        Category.ACTION,
        "HTTP request",
        "Calls an HTTP endpoint; outputs the response status, headers and body.",
        _HTTP_REQUEST_SCHEMA,
        required=True,
    ),
    _node(
        "condition",
        Category.LOGIC,
        "Condition",
        "Tests a value and continues on the true or the false port.",
        _CONDITION_SCHEMA,
        required=True,
        outputs=("true", "false"),
        expression_keys=frozenset({"field", "expression"}),
    ),
    _node(
        "transform",
        Category.LOGIC,
        "Transform",
        "Builds a new object from templated values and copied input fields.",
        _TRANSFORM_SCHEMA,
        required=True,
        expression_keys=frozenset({"map"}),
    ),
    _node("delay", Category.LOGIC, "Delay", "Waits, then passes its input on.", _DELAY_SCHEMA, required=True),
    _node("log", Category.ACTION, "Log", "Writes a message to the run log.", _LOG_SCHEMA, required=True),
    _node(
        "respond",
        Category.ACTION,
        "Respond",
        "Sets the reply to the webhook request that started the run.",
        _RESPOND_SCHEMA,
        required=False,
    ),
    _node(
        "approval",
        Category.LOGIC,
        "Approval",
        "Pauses the run until someone approves or rejects it.",
        _APPROVAL_SCHEMA,
        required=False,
        outputs=("approved", "rejected"),
    ),
)

CATALOG: Final[Mapping[str, NodeType]] = MappingProxyType(
    {node_type.id: node_type for node_type in _NODE_TYPES}
)
"""Every node type, by id."""


def get_node_type(type_id: str) -> NodeType | None:
    return CATALOG.get(type_id)


# --------------------------------------------------------------------------------------------
# Config checking: a JSON Schema subset
# --------------------------------------------------------------------------------------------

SUPPORTED_KEYWORDS: Final = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "oneOf",
        "anyOf",
        "title",
        "description",
        "default",
    }
)
"""The JSON Schema keywords :func:`check_schema` implements; the catalog's schemas use no others."""

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ConfigIssue:
    """A place in a config that violates the schema: ``path`` is a tuple of keys and indexes."""

    path: tuple[str | int, ...]
    message: str


def format_field_path(prefix: str, path: Sequence[str | int]) -> str:
    """Join a field path the way Kubernetes reports them: ``spec.nodes[2].config.headers["X-Key"]``."""
    text = prefix
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "object":
        return isinstance(value, Mapping)
    if name == "array":
        return isinstance(value, list | tuple)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return name == "number" or isinstance(value, int) or value.is_integer()


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_same(left[key], right[key]) for key in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def _show(value: Any) -> str:
    return json.dumps(value, default=str)


def check_schema(
    value: Any, schema: Mapping[str, Any], *, templates_allowed: bool = False
) -> list[ConfigIssue]:
    """Check ``value`` against ``schema``; an empty list means it conforms.

    With ``templates_allowed``, a string containing ``{{`` is accepted wherever it appears: it is only
    known after rendering (the engine checks the rendered config again before a node runs).
    """
    issues: list[ConfigIssue] = []
    _check(value, schema, (), issues, templates_allowed)
    return issues


def _check(
    value: Any,
    schema: Mapping[str, Any],
    path: tuple[str | int, ...],
    issues: list[ConfigIssue],
    templates: bool,
) -> None:
    if templates and isinstance(value, str) and "{{" in value:
        return
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, name) for name in names):
            issues.append(ConfigIssue(path, f"must be {' or '.join(_article(name) for name in names)}"))
            return
    if "const" in schema and not _same(value, schema["const"]):
        issues.append(ConfigIssue(path, f"must be {_show(schema['const'])}"))
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        issues.append(
            ConfigIssue(path, f"must be one of {', '.join(_show(option) for option in schema['enum'])}")
        )
    if isinstance(value, str):
        _check_string(value, schema, path, issues)
    elif _is_type(value, "number"):
        _check_number(value, schema, path, issues)
    elif isinstance(value, Mapping):
        _check_object(value, schema, path, issues, templates)
    elif isinstance(value, list | tuple):
        _check_array(value, schema, path, issues, templates)
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            _check_alternatives(value, keyword, schema[keyword], path, issues, templates)


def _article(type_name: str) -> str:
    return {"object": "an object", "array": "a list", "integer": "an integer", "null": "null"}.get(
        type_name, f"a {type_name}"
    )


def _check_string(
    value: str, schema: Mapping[str, Any], path: tuple[str | int, ...], issues: list[ConfigIssue]
) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        issues.append(ConfigIssue(path, "must not be empty" if schema["minLength"] == 1 else "is too short"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        issues.append(ConfigIssue(path, f"must be at most {schema['maxLength']} characters long"))


def _check_number(
    value: float, schema: Mapping[str, Any], path: tuple[str | int, ...], issues: list[ConfigIssue]
) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        issues.append(ConfigIssue(path, f"must be at least {schema['minimum']}"))
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        issues.append(ConfigIssue(path, f"must be greater than {schema['exclusiveMinimum']}"))
    if "maximum" in schema and value > schema["maximum"]:
        issues.append(ConfigIssue(path, f"must be at most {schema['maximum']}"))
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        issues.append(ConfigIssue(path, f"must be less than {schema['exclusiveMaximum']}"))


def _check_object(
    value: Mapping[str, Any],
    schema: Mapping[str, Any],
    path: tuple[str | int, ...],
    issues: list[ConfigIssue],
    templates: bool,
) -> None:
    properties: Mapping[str, Any] = schema.get("properties", {})
    for key in schema.get("required", ()):
        if key not in value:
            issues.append(ConfigIssue((*path, key), "is required"))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        issues.append(ConfigIssue(path, f"must have at least {schema['minProperties']} entries"))
    additional = schema.get("additionalProperties", True)
    for key, item in value.items():
        key_path = (*path, str(key))
        if key in properties:
            _check(item, properties[key], key_path, issues, templates)
        elif additional is False:
            allowed = ", ".join(properties) or "none"
            issues.append(ConfigIssue(key_path, f"is not a known setting (allowed: {allowed})"))
        elif isinstance(additional, Mapping):
            _check(item, additional, key_path, issues, templates)


def _check_array(
    value: Sequence[Any],
    schema: Mapping[str, Any],
    path: tuple[str | int, ...],
    issues: list[ConfigIssue],
    templates: bool,
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        issues.append(ConfigIssue(path, f"must have at least {schema['minItems']} items"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        issues.append(ConfigIssue(path, f"must have at most {schema['maxItems']} items"))
    if "items" in schema:
        for index, item in enumerate(value):
            _check(item, schema["items"], (*path, index), issues, templates)


def _check_alternatives(
    value: Any,
    keyword: str,
    branches: Sequence[Mapping[str, Any]],
    path: tuple[str | int, ...],
    issues: list[ConfigIssue],
    templates: bool,
) -> None:
    results = [check_schema(value, branch, templates_allowed=templates) for branch in branches]
    matching = sum(1 for result in results if not result)
    titles = "; ".join(str(branch.get("title", f"form {n}")) for n, branch in enumerate(branches, 1))
    if keyword == "oneOf" and matching > 1:
        issues.append(ConfigIssue(path, f"must match exactly one of: {titles} (it matches several)"))
    if matching:
        return
    # The forms whose discriminators (properties with a "const") the value has are what was meant.
    meant = [
        result
        for branch, result in zip(branches, results, strict=True)
        if _discriminators_match(value, branch)
    ]
    fewest = min((len(result) for result in meant), default=0)
    closest = [result for result in meant if len(result) == fewest]
    if len(closest) == 1:  # one form is clearly what was meant: report what it lacks
        issues.extend(ConfigIssue((*path, *issue.path), issue.message) for issue in closest[0])
    else:
        quantity = "exactly one" if keyword == "oneOf" else "at least one"
        issues.append(ConfigIssue(path, f"must match {quantity} of: {titles}"))


def _discriminators_match(value: Any, branch: Mapping[str, Any]) -> bool:
    properties: Mapping[str, Any] = branch.get("properties", {})
    constants = {key: schema["const"] for key, schema in properties.items() if "const" in schema}
    if not constants:
        return True
    return isinstance(value, Mapping) and all(
        key in value and _same(value[key], constant) for key, constant in constants.items()
    )


def check_config(
    node_type: NodeType, config: Mapping[str, Any], *, templates_allowed: bool = False
) -> list[ConfigIssue]:
    """Check a node's config against its type: empty when it needs one, then the schema."""
    if node_type.config_required and not config:
        required = node_type.config_schema.get("required", ())
        detail = f" (required: {', '.join(required)})" if required else ""
        return [ConfigIssue((), f"{node_type.id} nodes need a configuration{detail}")]
    return check_schema(config, node_type.config_schema, templates_allowed=templates_allowed)


def apply_defaults(node_type: NodeType, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with the schema's top-level ``default`` values filled in where a key is absent."""
    result = dict(config)
    for key, schema in node_type.config_schema.get("properties", {}).items():
        if key not in result and "default" in schema:
            result[key] = schema["default"]
    return result


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class SecretKeyRef:
    """One key of a Secret that a node reads (a ``secretRef`` in its config)."""

    name: str
    key: str

    @property
    def env_var(self) -> str:
        return secret_env_var(self.name, self.key)


def secret_env_prefix(name: str) -> str:
    """``TIDEFLOW_SECRET_<NAME>_``: the ``envFrom`` prefix that exposes Secret ``name`` to the runtime.

    The name is upper-cased and every character other than a letter or digit becomes ``_``.
    """
    return f"TIDEFLOW_SECRET_{_env_part(name)}_"


def secret_env_var(name: str, key: str) -> str:
    """The environment variable the runtime reads a Secret key from: ``TIDEFLOW_SECRET_<NAME>_<KEY>``.

    Name and key are normalized alike (upper case, ``_`` for anything but letters and digits). The
    runtime also accepts the key as written after the prefix, which is what ``envFrom`` with
    :func:`secret_env_prefix` produces.
    """
    return secret_env_prefix(name) + _env_part(key)


def _env_part(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", text.upper())


def secret_references(config: Any) -> list[SecretKeyRef]:
    """Every ``secretRef: {name, key}`` object anywhere in a config, sorted and without repeats."""
    return sorted(set(_iter_secret_refs(config)))


def _iter_secret_refs(value: Any) -> Iterator[SecretKeyRef]:
    if isinstance(value, Mapping):
        ref = value.get("secretRef")
        if isinstance(ref, Mapping) and isinstance(ref.get("name"), str) and isinstance(ref.get("key"), str):
            yield SecretKeyRef(ref["name"], ref["key"])
        for item in value.values():
            yield from _iter_secret_refs(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _iter_secret_refs(item)
