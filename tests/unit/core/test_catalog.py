"""The node catalog: its entries, its schemas (cross-checked with the jsonschema library) and its helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideflow.core.catalog import (
    CATALOG,
    SUPPORTED_KEYWORDS,
    Category,
    ConfigIssue,
    SecretKeyRef,
    apply_defaults,
    check_config,
    check_schema,
    format_field_path,
    get_node_type,
    secret_env_prefix,
    secret_env_var,
    secret_references,
)

TRIGGERS = {
    "manual_trigger",
    "webhook_trigger",
    "schedule_trigger",
    "queue_trigger",
    "email_trigger",
    "event_trigger",
}


def test_the_catalog_lists_the_node_types() -> None:
    assert set(CATALOG) == TRIGGERS | {
        "http_request",
        "condition",
        "transform",
        "delay",
        "log",
        "respond",
        "approval",
    }
    assert {type_id for type_id, node_type in CATALOG.items() if node_type.is_trigger} == TRIGGERS
    assert get_node_type("nope") is None


def test_ports() -> None:
    for type_id in TRIGGERS:
        assert CATALOG[type_id].inputs == ()
        assert CATALOG[type_id].outputs == ("output",)
        assert CATALOG[type_id].category is Category.TRIGGER
    assert CATALOG["condition"].outputs == ("true", "false")
    assert CATALOG["approval"].outputs == ("approved", "rejected")
    assert CATALOG["http_request"].inputs == ("input",)
    assert CATALOG["http_request"].outputs == ("output",)


def test_trigger_types_cover_every_run_trigger_type_once() -> None:
    fired = [trigger for node_type in CATALOG.values() for trigger in node_type.trigger_types]
    assert sorted(fired) == sorted(["manual", "api", "webhook", "schedule", "queue", "email", "event"])


def _keywords(schema: Any) -> Iterator[str]:
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            yield key
            if key == "properties":
                for child in value.values():
                    yield from _keywords(child)
            elif key in ("items", "additionalProperties"):
                yield from _keywords(value)
            elif key in ("oneOf", "anyOf"):
                for child in value:
                    yield from _keywords(child)


@pytest.mark.parametrize("type_id", sorted(CATALOG))
def test_schemas_are_valid_json_schema_using_only_supported_keywords(type_id: str) -> None:
    document = CATALOG[type_id].to_dict()
    json.dumps(document)
    jsonschema.Draft202012Validator.check_schema(document["configSchema"])
    assert set(_keywords(document["configSchema"])) <= SUPPORTED_KEYWORDS


def test_to_dict() -> None:
    document = CATALOG["condition"].to_dict()
    assert {key: document[key] for key in ("id", "category", "inputs", "outputs", "configRequired")} == {
        "id": "condition",
        "category": "logic",
        "inputs": ["input"],
        "outputs": ["true", "false"],
        "configRequired": True,
    }


def issues(type_id: str, config: Any, **kwargs: Any) -> list[tuple[str, str]]:
    return [
        (format_field_path("config", issue.path), issue.message)
        for issue in check_config(CATALOG[type_id], config, **kwargs)
    ]


def test_config_required_but_empty() -> None:
    assert issues("http_request", {}) == [
        ("config", "http_request nodes need a configuration (required: url)")
    ]
    assert issues("approval", {}) == []


@pytest.mark.parametrize(
    ("type_id", "config", "expected"),
    [
        ("http_request", {"url": 3}, [("config.url", "must be a string")]),
        ("http_request", {"url": ""}, [("config.url", "must not be empty")]),
        (
            "http_request",
            {"url": "https://x", "method": "get"},
            [("config.method", 'must be one of "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"')],
        ),
        (
            "http_request",
            {"url": "https://x", "timeoutSeconds": 0},
            [("config.timeoutSeconds", "must be greater than 0")],
        ),
        (
            "http_request",
            {"url": "https://x", "maxRedirects": 1.5},
            [("config.maxRedirects", "must be an integer")],
        ),
        (
            "http_request",
            {"url": "https://x", "failOnStatus": 1},
            [("config.failOnStatus", "must be a boolean")],
        ),
        (
            "http_request",
            {"url": "https://x", "headers": {"X-Key": ["a"]}},
            [('config.headers["X-Key"]', "must be a string or a number or a boolean")],
        ),
        (
            "http_request",
            {"url": "https://x", "methd": "GET"},
            [
                (
                    "config.methd",
                    "is not a known setting (allowed: method, url, headers, query, body, auth, "
                    "timeoutSeconds, responseType, failOnStatus, followRedirects, maxRedirects)",
                )
            ],
        ),
        (
            "http_request",
            {"url": "https://x", "auth": {"type": "bearer"}},
            [("config.auth.secretRef", "is required")],
        ),
        (
            "http_request",
            {"url": "https://x", "auth": {"type": "basic", "secretRef": {"name": "s", "key": "k"}}},
            [("config.auth.username", "is required")],
        ),
        (
            "http_request",
            {"url": "https://x", "auth": {"type": "oauth", "secretRef": {"name": "s", "key": "k"}}},
            [("config.auth", "must match exactly one of: bearer token; basic auth; API key header")],
        ),
        ("http_request", {"url": "https://x", "query": {"ids": [1, "2", True]}}, []),
        (
            "http_request",
            {"url": "https://x", "query": {"ids": [[1]]}},
            [("config.query.ids", "must match at least one of: form 1; form 2")],
        ),
        ("condition", {"expression": "a == 1"}, []),
        ("condition", {"field": "a", "operator": "equals", "value": {"any": ["thing"]}}, []),
        (
            "condition",
            {"operator": "equals"},
            [("config", "must match exactly one of: an expression; a field and an operator")],
        ),
        (
            "condition",
            {"expression": "a", "field": "a", "operator": "exists"},
            [
                (
                    "config",
                    "must match exactly one of: an expression; a field and an operator (it matches several)",
                )
            ],
        ),
        ("transform", {"includeInput": True}, [("config", "must match at least one of: set; map")]),
        ("transform", {"map": {"a": ""}}, [("config.map.a", "must not be empty")]),
        ("delay", {"seconds": -1}, [("config.seconds", "must be at least 0")]),
        ("delay", {"seconds": True}, [("config.seconds", "must be a number")]),
        ("delay", {"seconds": 1.0}, []),
        (
            "log",
            {"message": "m", "level": "fatal"},
            [("config.level", 'must be one of "debug", "info", "warning", "error"')],
        ),
        ("respond", {"status": 600}, [("config.status", "must be at most 599")]),
        ("respond", {"status": 200.0}, []),
        ("approval", {"approvers": ["a", ""]}, [("config.approvers[1]", "must not be empty")]),
        ("webhook_trigger", {"path": "/x", "custom": "kept"}, []),
    ],
)
def test_config_checks(type_id: str, config: Any, expected: list[tuple[str, str]]) -> None:
    assert issues(type_id, config) == expected


def test_templates_are_accepted_where_their_value_is_only_known_later() -> None:
    config = {"url": "{{ n1.url }}", "timeoutSeconds": "{{ trigger.inputs.t }}", "method": "{{ n1.method }}"}
    assert issues("http_request", config, templates_allowed=True) == []
    assert [path for path, _ in issues("http_request", config)] == ["config.timeoutSeconds", "config.method"]


def test_apply_defaults() -> None:
    assert apply_defaults(CATALOG["http_request"], {"url": "u", "method": "POST"}) == {
        "url": "u",
        "method": "POST",
        "timeoutSeconds": 30,
        "responseType": "auto",
        "failOnStatus": True,
        "followRedirects": True,
        "maxRedirects": 5,
    }


def test_format_field_path() -> None:
    assert format_field_path("spec.nodes[2].config", ["headers", "X-Key", 0, "a_b"]) == (
        'spec.nodes[2].config.headers["X-Key"][0].a_b'
    )
    assert format_field_path("", ["url"]) == "url"


def test_secrets() -> None:
    config = {
        "auth": {"type": "bearer", "secretRef": {"name": "api-creds", "key": "token"}},
        "nested": [{"secretRef": {"name": "api-creds", "key": "token"}}, {"secretRef": {"name": "x"}}],
    }
    assert secret_references(config) == [SecretKeyRef("api-creds", "token")]
    assert SecretKeyRef("api-creds", "token").env_var == "TIDEFLOW_SECRET_API_CREDS_TOKEN"
    assert secret_env_var("my.secret", "tls.crt") == "TIDEFLOW_SECRET_MY_SECRET_TLS_CRT"
    assert secret_env_prefix("my.secret") == "TIDEFLOW_SECRET_MY_SECRET_"


# --- the small validator agrees with the jsonschema library ----------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 700)
    | st.floats(-2, 4000, allow_nan=False)
    | st.text(max_size=3)
)


def _values_for(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values near the schema: its enum and const values, scalars, and objects with its property names."""
    options: list[Any] = [*schema.get("enum", ()), *([schema["const"]] if "const" in schema else [])]
    names = [*schema.get("properties", {}), "other"]
    for branch in (*schema.get("oneOf", ()), *schema.get("anyOf", ())):
        names += list(branch.get("properties", {})) + list(branch.get("required", ()))
    leaf = SCALARS | st.sampled_from(options) if options else SCALARS
    return st.recursive(
        leaf,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(names), children, max_size=4)
        ),
        max_leaves=8,
    )


def _configs(type_id: str) -> st.SearchStrategy[dict[str, Any]]:
    schema = CATALOG[type_id].to_dict()["configSchema"]
    properties = schema.get("properties", {})
    if not properties:
        return st.dictionaries(st.text(max_size=3), SCALARS, max_size=3)
    values = {name: _values_for(child) for name, child in properties.items()}
    return st.lists(st.sampled_from([*properties, "unknown"]), max_size=5, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({key: values.get(key, SCALARS) for key in keys})
    )


VALID: dict[str, list[dict[str, Any]]] = {
    "http_request": [
        {
            "url": "https://x",
            "method": "POST",
            "headers": {"A": "b", "N": 1},
            "query": {"q": [1, "x"], "r": True},
            "body": {"a": [1]},
            "auth": {"type": "basic", "username": "u", "secretRef": {"name": "s", "key": "k"}},
            "timeoutSeconds": 5,
            "responseType": "json",
            "failOnStatus": False,
            "followRedirects": True,
            "maxRedirects": 3,
        },
        {"url": "u", "auth": {"type": "header", "header": "X-Key", "secretRef": {"name": "s", "key": "k"}}},
    ],
    "condition": [{"field": "a.b", "operator": "equals", "value": 1}, {"expression": "a"}],
    "transform": [{"set": {"a": 1}, "map": {"b": "x.y"}, "includeInput": True}],
    "delay": [{"seconds": 5}],
    "log": [{"message": "m", "level": "info"}],
    "respond": [{"status": 201, "headers": {"a": "b"}, "body": "x"}],
    "approval": [{"message": "m", "approvers": ["a"]}],
}


def _mutations(type_id: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid configs with a few keys dropped or replaced: about half stay valid."""
    schema = CATALOG[type_id].to_dict()["configSchema"]
    replacement = _values_for(schema)

    def choice(value: Any) -> st.SearchStrategy[tuple[str, Any]]:
        def pick(n: int) -> st.SearchStrategy[tuple[str, Any]]:
            if n < 8:
                return st.just(("keep", value))
            if n == 8:
                return st.just(("drop", None))
            return replacement.map(lambda new: ("set", new))

        return st.integers(0, 9).flatmap(pick)

    def mutate(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        choices = {key: choice(value) for key, value in base.items()}
        return st.fixed_dictionaries(choices).map(
            lambda picked: {key: value for key, (action, value) in picked.items() if action != "drop"}
        )

    return st.sampled_from(VALID.get(type_id, [{}])).flatmap(mutate)


@pytest.mark.parametrize("type_id", sorted(CATALOG))
def test_the_validator_agrees_with_jsonschema(type_id: str) -> None:
    schema = CATALOG[type_id].to_dict()["configSchema"]
    reference = jsonschema.Draft202012Validator(schema)

    @settings(max_examples=200, deadline=None)
    @given(_configs(type_id) | _mutations(type_id))
    def agree(config: dict[str, Any]) -> None:
        ours: list[ConfigIssue] = check_schema(config, CATALOG[type_id].config_schema)
        assert (not ours) == reference.is_valid(config), (config, ours)

    agree()


def test_check_schema_keywords_beyond_the_catalog() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 3},
            "ratio": {"type": "number", "exclusiveMaximum": 1},
            "tags": {"type": "array", "minItems": 1, "maxItems": 2},
            "nothing": {"type": "null"},
            "shape": {"const": {"a": [1, True]}},
        },
        "minProperties": 2,
    }
    assert check_schema({"name": "abc", "shape": {"a": [1, True]}}, schema) == []
    assert [(issue.path, issue.message) for issue in check_schema({"name": "abcd"}, schema)] == [
        ((), "must have at least 2 entries"),
        (("name",), "must be at most 3 characters long"),
    ]
    found = check_schema({"ratio": 1, "tags": [], "nothing": 0, "shape": {"a": [1, 1]}}, schema)
    assert [(issue.path, issue.message) for issue in found] == [
        (("ratio",), "must be less than 1"),
        (("tags",), "must have at least 1 items"),
        (("nothing",), "must be null"),
        (("shape",), 'must be {"a": [1, true]}'),
    ]
    assert check_schema({"tags": [1, 2, 3], "x": 1}, schema)[0].message == "must have at most 2 items"
