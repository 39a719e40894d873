"""CRD schema processing of the sandbox API server, checked against kube-apiserver's documented answers.

Expected messages are the ones kube-apiserver (1.33/1.34) puts in the ``causes`` of a 422 Invalid
status: kube-openapi's ``<path> in body should ...`` details wrapped by apimachinery's
``field.Error`` (``Invalid value: <Go-formatted value>: <detail>``), the list-type ``Duplicate
value`` causes, and the CEL validator's ``Invalid value: "<schema type>": <rule message>``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tideflow.sandbox.schema import FieldError, apply_defaults, check_structural, prune, validate

NOT_CHECKED = FieldError(
    "<nil>",
    "FieldValueInvalid",
    "Invalid value: null: some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation",
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["state"],
            "properties": {
                "state": {"type": "string", "enum": ["Draft", "Active", "Paused", "Archived"]},
                "priority": {"type": "integer", "enum": [1, 2, 3]},
                "owner": {"type": "string", "minLength": 3, "maxLength": 8, "pattern": "^[a-z][a-z0-9-]*$"},
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                "ratio": {"type": "number", "minimum": 0.5, "exclusiveMaximum": True, "maximum": 1},
                "big": {"type": "number", "maximum": 100000},
                "step": {"type": "integer", "multipleOf": 5},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "startAt": {"type": "string", "format": "date-time"},
                "uid": {"type": "string", "format": "uuid"},
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "maxItems": 3,
                    "x-kubernetes-list-type": "set",
                },
                "labels": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 5},
                    "maxProperties": 2,
                },
                "lifecycle": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "default": "always-on"},
                        "idleTimeoutMinutes": {"type": "integer", "minimum": 5, "maximum": 1440},
                    },
                },
                "settings": {
                    "type": "object",
                    "properties": {
                        "timeoutSeconds": {"type": "integer", "default": 300},
                        "retry": {
                            "type": "object",
                            "default": {},
                            "properties": {"max": {"type": "integer", "default": 3}},
                        },
                    },
                },
                "nodes": {
                    "type": "array",
                    "minItems": 1,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["id"],
                    "items": {
                        "type": "object",
                        "required": ["id"],
                        "properties": {
                            "id": {"type": "string"},
                            "position": {
                                "type": "object",
                                "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                            },
                            "port": {"type": "string", "default": "output"},
                            "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    },
                },
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name", "protocol"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "protocol": {"type": "string", "default": "TCP"},
                        },
                    },
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object", "properties": {"image": {"type": "string"}}}},
                },
                "extra": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}},
                },
            },
        },
        "status": {
            "type": "object",
            "properties": {"phase": {"type": "string"}, "count": {"type": "integer"}},
        },
    },
}


def resource(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "demo", "namespace": "acme"},
        "spec": {"state": "Draft", "nodes": [{"id": "start"}], **spec},
    }


def with_rules(schema: dict[str, Any], *rules: dict[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(schema)
    copied["x-kubernetes-validations"] = list(rules)
    return copied


# ---------------------------------------------------------------------------------------------
# OpenAPI value validation


def test_a_valid_resource_has_no_errors() -> None:
    obj = resource(
        owner="ops-1",
        replicas=3,
        ratio=0.75,
        step=10,
        port="http",
        note=None,
        startAt="2024-05-01T10:00:00Z",
        uid="123e4567-e89b-12d3-a456-426614174000",
        tags=["a", "b"],
        labels={"team": "core"},
        lifecycle={"type": "idle-shutdown", "idleTimeoutMinutes": 30},
    )
    assert validate(SCHEMA, obj) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"lifecycle": {"idleTimeoutMinutes": 3}},
            FieldError(
                "spec.lifecycle.idleTimeoutMinutes",
                "FieldValueInvalid",
                "Invalid value: 3: spec.lifecycle.idleTimeoutMinutes in body "
                "should be greater than or equal to 5",
            ),
        ),
        (
            {"lifecycle": {"idleTimeoutMinutes": 2000}},
            FieldError(
                "spec.lifecycle.idleTimeoutMinutes",
                "FieldValueInvalid",
                "Invalid value: 2000: spec.lifecycle.idleTimeoutMinutes in body "
                "should be less than or equal to 1440",
            ),
        ),
        (
            {"ratio": 1},
            FieldError(
                "spec.ratio",
                "FieldValueInvalid",
                "Invalid value: 1: spec.ratio in body should be less than 1",
            ),
        ),
        (
            {"ratio": 0.25},
            FieldError(
                "spec.ratio",
                "FieldValueInvalid",
                "Invalid value: 0.25: spec.ratio in body should be greater than or equal to 0.5",
            ),
        ),
        (
            {"big": 1234567.0},
            FieldError(
                "spec.big",
                "FieldValueInvalid",
                "Invalid value: 1.234567e+06: spec.big in body should be less than or equal to 100000",
            ),
        ),
        (
            {"step": 7},
            FieldError(
                "spec.step",
                "FieldValueInvalid",
                "Invalid value: 7: spec.step in body should be a multiple of 5",
            ),
        ),
    ],
)
def test_numeric_bounds_use_the_kube_openapi_messages(spec: dict[str, Any], expected: FieldError) -> None:
    assert validate(SCHEMA, resource(**spec)) == [expected]


def test_enum_lists_the_supported_values() -> None:
    assert validate(SCHEMA, resource(state="Foo")) == [
        FieldError(
            "spec.state",
            "FieldValueNotSupported",
            'Unsupported value: "Foo": supported values: "Draft", "Active", "Paused", "Archived"',
        )
    ]


def test_enum_of_numbers_quotes_their_json_form() -> None:
    assert validate(SCHEMA, resource(priority=7)) == [
        FieldError(
            "spec.priority", "FieldValueNotSupported", 'Unsupported value: 7: supported values: "1", "2", "3"'
        )
    ]


def test_string_length_counts_code_points_and_pattern_is_checked() -> None:
    assert validate(SCHEMA, resource(owner="ab")) == [
        FieldError(
            "spec.owner",
            "FieldValueInvalid",
            'Invalid value: "ab": spec.owner in body should be at least 3 chars long',
        )
    ]
    assert validate(SCHEMA, resource(owner="abcdefghi")) == [
        FieldError("spec.owner", "FieldValueTooLong", "Too long: may not be more than 8 bytes")
    ]
    # eight code points, more than eight bytes in UTF-8: still within maxLength, but not the pattern
    assert validate(SCHEMA, resource(owner="aéééééé1")) == [
        FieldError(
            "spec.owner",
            "FieldValueInvalid",
            "Invalid value: \"aéééééé1\": spec.owner in body should match '^[a-z][a-z0-9-]*$'",
        )
    ]


def test_required_fields_are_reported_with_their_path() -> None:
    obj = resource(nodes=[{"id": "a"}, {"position": {"x": 1}}])
    del obj["spec"]["state"]
    assert validate(SCHEMA, obj) == [
        FieldError("spec.nodes[1].id", "FieldValueRequired", "Required value"),
        FieldError("spec.state", "FieldValueRequired", "Required value"),
    ]


@pytest.mark.parametrize(
    ("value", "found"),
    [("3", "string"), (True, "boolean"), (2.5, "number"), ([1], "array"), ({"a": 1}, "object")],
)
def test_wrong_types_are_type_invalid(value: Any, found: str) -> None:
    assert validate(SCHEMA, resource(replicas=value)) == [
        FieldError(
            "spec.replicas",
            "FieldValueTypeInvalid",
            f'Invalid value: "{found}": spec.replicas in body must be of type integer: "{found}"',
        )
    ]


def test_integers_are_numbers_and_integral_floats_are_integers() -> None:
    assert validate(SCHEMA, resource(ratio=0.5, replicas=4.0)) == []
    # kube-openapi checks an integer against int64(minimum): 0 passes "minimum: 0.5" (apiserver quirk)
    assert validate(SCHEMA, resource(ratio=0)) == []
    assert validate(SCHEMA, resource(ratio=0.0))[0].message == (
        "Invalid value: 0: spec.ratio in body should be greater than or equal to 0.5"
    )


def test_int_or_string_accepts_both_and_nothing_else() -> None:
    assert validate(SCHEMA, resource(port=8080)) == []
    assert validate(SCHEMA, resource(port="http")) == []
    assert validate(SCHEMA, resource(port=False)) == [
        FieldError(
            "spec.port",
            "FieldValueTypeInvalid",
            'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"',
        )
    ]


def test_null_is_only_accepted_when_nullable() -> None:
    assert validate(SCHEMA, resource(note=None)) == []
    assert validate(SCHEMA, resource(owner=None)) == [
        FieldError(
            "spec.owner",
            "FieldValueTypeInvalid",
            'Invalid value: "null": spec.owner in body must be of type string: "null"',
        )
    ]


def test_formats_the_apiserver_checks() -> None:
    assert validate(SCHEMA, resource(startAt="2024-05-01T10:00:00.5+02:00")) == []
    assert validate(SCHEMA, resource(startAt="yesterday", uid="not-a-uuid")) == [
        FieldError(
            "spec.startAt",
            "FieldValueTypeInvalid",
            'Invalid value: "yesterday": spec.startAt in body must be of type date-time: "yesterday"',
        ),
        FieldError(
            "spec.uid",
            "FieldValueTypeInvalid",
            'Invalid value: "not-a-uuid": spec.uid in body must be of type uuid: "not-a-uuid"',
        ),
    ]


def test_unsupported_formats_are_ignored() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "format": "my-own-format"}}}
    assert validate(schema, {"metadata": {"name": "x"}, "a": "anything"}) == []


def test_array_and_map_sizes() -> None:
    assert validate(SCHEMA, resource(nodes=[])) == [
        FieldError(
            "spec.nodes",
            "FieldValueInvalid",
            "Invalid value: 0: spec.nodes in body should have at least 1 items",
        )
    ]
    assert validate(SCHEMA, resource(tags=["a", "b", "c", "d"])) == [
        FieldError("spec.tags", "FieldValueTooMany", "Too many: 4: must have at most 3 items")
    ]
    assert validate(SCHEMA, resource(labels={"a": "1", "b": "2", "c": "3"})) == [
        FieldError("spec.labels", "FieldValueTooMany", "Too many: 3: must have at most 2 items")
    ]


def test_nested_errors_carry_index_and_key_paths() -> None:
    obj = resource(
        nodes=[{"id": "a", "position": {"x": 1.5}}, {"id": "b", "position": {"x": "left"}}],
        labels={"team": "far-too-long"},
    )
    assert validate(SCHEMA, obj) == [
        FieldError(
            "spec.nodes[1].position.x",
            "FieldValueTypeInvalid",
            'Invalid value: "string": spec.nodes[1].position.x in body must be of type number: "string"',
        ),
        FieldError("spec.labels.team", "FieldValueTooLong", "Too long: may not be more than 5 bytes"),
    ]


def test_list_type_set_and_map_duplicates() -> None:
    obj = resource(
        tags=["a", "b", "a"],
        nodes=[{"id": "a"}, {"id": "b"}, {"id": "a"}, {"id": "a"}],
        ports=[
            {"name": "http", "protocol": "TCP"},
            {"name": "http", "protocol": "UDP"},
            {"name": "http", "protocol": "TCP"},
        ],
    )
    assert validate(SCHEMA, obj) == [
        FieldError("spec.nodes[2]", "FieldValueDuplicate", 'Duplicate value: {"id":"a"}'),
        FieldError("spec.tags[2]", "FieldValueDuplicate", 'Duplicate value: "a"'),
        FieldError(
            "spec.ports[2]", "FieldValueDuplicate", 'Duplicate value: {"name":"http","protocol":"TCP"}'
        ),
    ]


def test_all_errors_are_reported_together_in_document_order() -> None:
    obj = resource(state="Nope", replicas=-1, owner="X", tags=["a", "a"])
    obj["metadata"] = {}
    errors = validate(SCHEMA, obj)
    assert [(e.path, e.type) for e in errors] == [
        ("metadata.name", "FieldValueRequired"),
        ("spec.state", "FieldValueNotSupported"),
        ("spec.replicas", "FieldValueInvalid"),
        ("spec.owner", "FieldValueInvalid"),
        ("spec.tags[1]", "FieldValueDuplicate"),
    ]
    assert errors[0].message == "Required value: name or generateName is required"
    assert validate(SCHEMA, obj) == errors  # deterministic


def test_generate_name_satisfies_the_name_requirement() -> None:
    obj = resource()
    obj["metadata"] = {"generateName": "demo-"}
    assert validate(SCHEMA, obj) == []


def test_any_of_failure_is_reported_with_the_apiserver_composite_message() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
            }
        },
    }
    errors = validate(schema, {"metadata": {"name": "x"}, "spec": {}})
    assert errors[0] == FieldError(
        "<nil>", "FieldValueInvalid", 'Invalid value: "": "spec" must validate at least one schema (anyOf)'
    )
    assert errors[1:] == [FieldError("spec.a", "FieldValueRequired", "Required value")]
    assert validate(schema, {"metadata": {"name": "x"}, "spec": {"b": "yes"}}) == []


# ---------------------------------------------------------------------------------------------
# Pruning


def test_prune_drops_unknown_fields_and_keeps_type_and_object_meta() -> None:
    obj = resource(bogus=1, nodes=[{"id": "a", "color": "red", "position": {"x": 1, "z": 2}}])
    obj["metadata"]["labels"] = {"app": "x"}
    obj["unexpected"] = True
    obj["status"] = {"phase": "Ready", "junk": 1}
    pruned = prune(SCHEMA, obj)
    assert pruned == {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "demo", "namespace": "acme", "labels": {"app": "x"}},
        "spec": {"state": "Draft", "nodes": [{"id": "a", "position": {"x": 1}}]},
        "status": {"phase": "Ready"},
    }
    assert obj["spec"]["bogus"] == 1  # the input is not modified


def test_prune_keeps_what_preserve_unknown_fields_preserves_but_prunes_known_children() -> None:
    obj = resource(
        extra={"anything": {"deep": [1, 2]}, "known": {"a": "kept", "b": "pruned"}},
        nodes=[{"id": "a", "config": {"url": "https://x", "headers": {"k": "v"}}}],
    )
    pruned = prune(SCHEMA, obj)
    assert pruned["spec"]["extra"] == {"anything": {"deep": [1, 2]}, "known": {"a": "kept"}}
    assert pruned["spec"]["nodes"][0]["config"] == {"url": "https://x", "headers": {"k": "v"}}


def test_prune_keeps_meta_of_embedded_resources() -> None:
    template = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"image": "busybox", "command": ["sh"]},
        "status": {},
    }
    pruned = prune(SCHEMA, resource(template=template))
    assert pruned["spec"]["template"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"image": "busybox"},
    }


def test_prune_keeps_map_keys_and_prunes_inside_their_values() -> None:
    schema = {
        "type": "object",
        "properties": {
            "routes": {
                "type": "object",
                "additionalProperties": {"type": "object", "properties": {"target": {"type": "string"}}},
            }
        },
    }
    obj = {"routes": {"a": {"target": "x", "weight": 3}, "b": {}}}
    assert prune(schema, obj) == {"routes": {"a": {"target": "x"}, "b": {}}}


# ---------------------------------------------------------------------------------------------
# Defaulting


def test_defaults_fill_absent_fields_without_overwriting() -> None:
    obj = resource(lifecycle={}, ports=[{"name": "http"}, {"name": "dns", "protocol": "UDP"}])
    defaulted = apply_defaults(SCHEMA, obj)
    assert defaulted["spec"]["lifecycle"] == {"type": "always-on"}
    assert defaulted["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP"},
        {"name": "dns", "protocol": "UDP"},
    ]
    assert defaulted["spec"]["nodes"] == [{"id": "start", "port": "output"}]
    assert obj["spec"]["lifecycle"] == {}  # the input is not modified


def test_defaults_do_not_create_absent_parents() -> None:
    defaulted = apply_defaults(SCHEMA, resource())
    assert "settings" not in defaulted["spec"]
    assert "lifecycle" not in defaulted["spec"]


def test_defaults_apply_inside_existing_objects_and_inside_defaults() -> None:
    defaulted = apply_defaults(SCHEMA, resource(settings={}))
    assert defaulted["spec"]["settings"] == {"timeoutSeconds": 300, "retry": {"max": 3}}


def test_nulls_are_defaulted_kept_or_dropped_like_the_apiserver() -> None:
    obj = resource(settings={"timeoutSeconds": None}, note=None, owner=None)
    defaulted = apply_defaults(SCHEMA, obj)
    assert defaulted["spec"]["settings"]["timeoutSeconds"] == 300  # non-nullable null with a default
    assert defaulted["spec"]["note"] is None  # nullable: kept
    assert "owner" not in defaulted["spec"]  # non-nullable without default: dropped
    assert validate(SCHEMA, defaulted) == []


# ---------------------------------------------------------------------------------------------
# CEL rules


def spec_with_rules(*rules: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["x-kubernetes-validations"] = list(rules)
    return schema


def test_cel_rule_with_message_and_field_path() -> None:
    schema = spec_with_rules(
        {
            "rule": "self.lifecycle.type != 'idle-shutdown' || has(self.lifecycle.idleTimeoutMinutes)",
            "message": "idleTimeoutMinutes is required when type is idle-shutdown",
            "fieldPath": ".lifecycle.idleTimeoutMinutes",
            "reason": "FieldValueRequired",
        }
    )
    assert validate(schema, resource(lifecycle={"type": "idle-shutdown"})) == [
        FieldError(
            "spec.lifecycle.idleTimeoutMinutes",
            "FieldValueRequired",
            "Required value: idleTimeoutMinutes is required when type is idle-shutdown",
        )
    ]
    assert validate(schema, resource(lifecycle={"type": "idle-shutdown", "idleTimeoutMinutes": 10})) == []


def test_cel_rule_without_message_reports_the_rule() -> None:
    schema = spec_with_rules({"rule": "size(self.nodes) <= 2 && self.nodes.all(n, n.id.matches('^[a-z]+$'))"})
    assert validate(schema, resource(nodes=[{"id": "a"}, {"id": "B2"}])) == [
        FieldError(
            "spec",
            "FieldValueInvalid",
            'Invalid value: "object": failed rule: '
            "size(self.nodes) <= 2 && self.nodes.all(n, n.id.matches('^[a-z]+$'))",
        )
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (None, FieldError("spec.tags", "FieldValueInvalid", 'Invalid value: "array": at most one tag')),
        ("FieldValueForbidden", FieldError("spec.tags", "FieldValueForbidden", "Forbidden: at most one tag")),
        (
            "FieldValueRequired",
            FieldError("spec.tags", "FieldValueRequired", "Required value: at most one tag"),
        ),
        ("FieldValueDuplicate", FieldError("spec.tags", "FieldValueDuplicate", 'Duplicate value: "array"')),
    ],
)
def test_cel_reason_selects_the_cause_type(reason: str | None, expected: FieldError) -> None:
    rule: dict[str, Any] = {"rule": "size(self) <= 1", "message": "at most one tag"}
    if reason is not None:
        rule["reason"] = reason
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["properties"]["tags"]["x-kubernetes-validations"] = [rule]
    assert validate(schema, resource(tags=["a", "b"])) == [expected]


def test_cel_message_expression_and_its_fallback() -> None:
    schema = spec_with_rules(
        {
            "rule": "self.nodes.size() <= 1",
            "messageExpression": "'too many nodes: ' + string(self.nodes.size())",
        },
        {"rule": "self.nodes.size() <= 1", "messageExpression": "self.nodes.size()", "message": "fallback"},
    )
    assert validate(schema, resource(nodes=[{"id": "a"}, {"id": "b"}])) == [
        FieldError("spec", "FieldValueInvalid", 'Invalid value: "object": too many nodes: 2'),
        FieldError("spec", "FieldValueInvalid", 'Invalid value: "object": fallback'),
    ]


def test_cel_rules_on_items_and_map_values_use_index_and_key_paths() -> None:
    schema = copy.deepcopy(SCHEMA)
    spec = schema["properties"]["spec"]["properties"]
    spec["nodes"]["items"]["x-kubernetes-validations"] = [{"rule": "self.id != 'bad'", "message": "bad id"}]
    spec["labels"]["additionalProperties"]["x-kubernetes-validations"] = [
        {"rule": "self != 'x'", "message": "no x"}
    ]
    obj = resource(nodes=[{"id": "ok"}, {"id": "bad"}], labels={"a": "x"})
    assert validate(schema, obj) == [
        FieldError("spec.nodes[1]", "FieldValueInvalid", 'Invalid value: "object": bad id'),
        FieldError("spec.labels[a]", "FieldValueInvalid", 'Invalid value: "string": no x'),
    ]


def test_cel_rule_at_the_root_sees_type_and_object_meta() -> None:
    schema = with_rules(
        SCHEMA, {"rule": "self.metadata.name.startsWith('wf-')", "message": "name must start with wf-"}
    )
    assert validate(schema, resource()) == [
        FieldError("<nil>", "FieldValueInvalid", 'Invalid value: "object": name must start with wf-')
    ]


def test_transition_rule_is_skipped_on_create_and_enforced_on_update() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["properties"]["owner"]["x-kubernetes-validations"] = [
        {"rule": "self == oldSelf", "message": "owner is immutable"}
    ]
    old = resource(owner="alice")
    assert validate(schema, resource(owner="bob")) == []
    assert validate(schema, resource(owner="alice"), old=old) == []
    assert validate(schema, resource(owner="bob"), old=old) == [
        FieldError("spec.owner", "FieldValueInvalid", 'Invalid value: "string": owner is immutable')
    ]


def test_transition_rule_is_skipped_where_no_old_value_correlates() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["properties"]["owner"]["x-kubernetes-validations"] = [
        {"rule": "self == oldSelf", "message": "owner is immutable"}
    ]
    assert validate(schema, resource(owner="bob"), old=resource()) == []


def test_optional_old_self_rule_runs_on_create() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["properties"]["replicas"]["x-kubernetes-validations"] = [
        {
            "rule": "!oldSelf.hasValue() ? self <= 5 : self <= oldSelf.value() + 1",
            "message": "grow slowly",
            "optionalOldSelf": True,
        }
    ]
    assert validate(schema, resource(replicas=6)) == [
        FieldError("spec.replicas", "FieldValueInvalid", 'Invalid value: "integer": grow slowly')
    ]
    assert validate(schema, resource(replicas=7), old=resource(replicas=6)) == []


def test_cel_compile_and_evaluation_errors_become_field_errors() -> None:
    schema = spec_with_rules(
        {"rule": "self.state =="}, {"rule": "self.missing == 1"}, {"rule": "noSuchFunction(self)"}
    )
    errors = validate(schema, resource())
    assert [(e.path, e.type) for e in errors] == [("spec", "FieldValueInvalid")] * 3
    assert errors[0].message.startswith(
        'Invalid value: "object": rule compile error: compilation failed: ERROR: <input>:1:'
    )
    assert (
        errors[1].message
        == 'Invalid value: "object": no such key: missing evaluating rule: self.missing == 1'
    )
    assert errors[2].message == (
        'Invalid value: "object": rule compile error: compilation failed: ERROR: <input>:1:1: '
        "undeclared reference to 'noSuchFunction' (in container '')"
    )


def test_cel_is_not_evaluated_while_blocking_errors_exist() -> None:
    schema = spec_with_rules({"rule": "false", "message": "never shown"})
    assert validate(schema, resource(state="Foo")) == [
        FieldError(
            "spec.state",
            "FieldValueNotSupported",
            'Unsupported value: "Foo": supported values: "Draft", "Active", "Paused", "Archived"',
        ),
        NOT_CHECKED,
    ]
    # non-blocking errors (bounds, duplicates) do not stop CEL
    assert [e.message for e in validate(schema, resource(replicas=11))][
        -1
    ] == 'Invalid value: "object": never shown'
    # without any rule in the schema there is no "not checked" cause
    assert NOT_CHECKED not in validate(SCHEMA, resource(state="Foo"))


def test_update_ratchets_errors_of_unchanged_values() -> None:
    strict = copy.deepcopy(SCHEMA)
    strict["properties"]["spec"]["properties"]["replicas"]["maximum"] = 2
    strict["properties"]["spec"]["properties"]["owner"]["x-kubernetes-validations"] = [
        {"rule": "self.size() > 4", "message": "owner too short"}
    ]
    stored = resource(replicas=5, owner="abc")
    assert [e.path for e in validate(strict, stored)] == ["spec.replicas", "spec.owner"]
    # a status-only update keeps the invalid-but-unchanged spec
    updated = copy.deepcopy(stored)
    updated["status"] = {"phase": "Ready"}
    assert validate(strict, updated, old=stored) == []
    # changing the value makes it count again
    updated["spec"]["replicas"] = 6
    assert validate(strict, updated, old=stored) == [
        FieldError(
            "spec.replicas",
            "FieldValueInvalid",
            "Invalid value: 6: spec.replicas in body should be less than or equal to 2",
        )
    ]


# ---------------------------------------------------------------------------------------------
# Structural schema check


def test_valid_schema_is_structural() -> None:
    assert check_structural(SCHEMA) == []
    assert check_structural(spec_with_rules({"rule": "self.state != ''", "fieldPath": ".state"})) == []


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (
            lambda s: s["properties"]["spec"]["properties"]["owner"].pop("type"),
            "openAPIV3Schema.properties[spec].properties[owner].type: Required value: "
            "must not be empty for specified object fields",
        ),
        (
            lambda s: s["properties"]["spec"]["properties"]["tags"].pop("items"),
            "openAPIV3Schema.properties[spec].properties[tags].items: Required value: must be specified",
        ),
        (
            lambda s: s["properties"]["spec"].update(anyOf=[{"type": "object", "required": ["state"]}]),
            "openAPIV3Schema.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural",
        ),
        (
            lambda s: s["properties"]["spec"].update(allOf=[{"properties": {"ghost": {"minLength": 1}}}]),
            "openAPIV3Schema.properties[spec].properties[ghost]: Required value: "
            "because it is defined in openAPIV3Schema.properties[spec].allOf[0].properties[ghost]",
        ),
        (
            lambda s: s.update(type="array", items={"type": "string"}),
            'openAPIV3Schema.type: Invalid value: "array": must be object at the root',
        ),
        (
            lambda s: s["properties"]["spec"].update(additionalProperties={"type": "string"}),
            "openAPIV3Schema.properties[spec].additionalProperties: Forbidden: "
            "additionalProperties and properties are mutual exclusive",
        ),
        (
            lambda s: s["properties"]["spec"]["properties"]["tags"].update(uniqueItems=True),
            "openAPIV3Schema.properties[spec].properties[tags].uniqueItems: Forbidden: "
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ),
        (
            lambda s: s["properties"]["metadata"].update(properties={"labels": {"type": "object"}}),
            "openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and "
            "generateName, but metadata is implicitly specified",
        ),
        (
            lambda s: s["properties"]["spec"]["properties"]["nodes"].pop("x-kubernetes-list-map-keys"),
            "openAPIV3Schema.properties[spec].properties[nodes].x-kubernetes-list-map-keys: Required value: "
            "must not be empty if x-kubernetes-list-type is map",
        ),
        (
            lambda s: s["properties"]["spec"]["properties"].update(kind={"type": "strng"}),
            'openAPIV3Schema.properties[spec].properties[kind].type: Unsupported value: "strng": '
            'supported values: "array", "boolean", "integer", "number", "object", "string"',
        ),
    ],
)
def test_non_structural_schemas_are_refused(mutate: Any, problem: str) -> None:
    schema = copy.deepcopy(SCHEMA)
    mutate(schema)
    assert problem in check_structural(schema)


def test_int_or_string_any_of_pattern_and_preserved_fields_without_type_are_structural() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["properties"]["port"] = {
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
    }
    schema["properties"]["spec"]["properties"]["free"] = {"x-kubernetes-preserve-unknown-fields": True}
    assert check_structural(schema) == []


def test_rules_that_do_not_compile_or_misuse_old_self_are_refused() -> None:
    schema = spec_with_rules({"rule": "self.state ==", "message": "x"})
    schema["properties"]["spec"]["properties"]["tags"]["items"]["x-kubernetes-validations"] = [
        {"rule": "self == oldSelf"}
    ]
    problems = check_structural(schema)
    assert any(
        p.startswith(
            "openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: "
            'Invalid value: "self.state ==": compilation failed: ERROR: <input>:1:'
        )
        for p in problems
    )
    assert (
        "openAPIV3Schema.properties[spec].properties[tags].items.x-kubernetes-validations[0].rule: "
        'Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion '
        "of the schema within openAPIV3Schema.properties[spec].properties[tags].items"
    ) in problems


# ---------------------------------------------------------------------------------------------
# Properties


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
SPEC_FIELDS = ("state", "owner", "replicas", "ratio", "port", "tags", "labels", "nodes", "ports", "lifecycle")
spec_values = st.fixed_dictionaries({}, optional=dict.fromkeys(SPEC_FIELDS, json_values))
RULED = spec_with_rules(
    {"rule": "self.nodes.all(n, n.id.size() < 10)", "message": "short ids"},
    {"rule": "!has(self.owner) || self.owner == oldSelf.owner"},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=spec_values, root=json_values)
def test_processing_never_raises_for_any_json(spec: dict[str, Any], root: Any) -> None:
    obj = {"apiVersion": "tideflow.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "x"}, "spec": spec}
    for candidate in (obj, root):
        pruned = prune(RULED, candidate)
        assert prune(RULED, pruned) == pruned
        defaulted = apply_defaults(RULED, pruned)
        for error in validate(RULED, defaulted, old=obj) + validate(RULED, candidate):
            assert isinstance(error, FieldError)
            assert error.path
            assert error.type.startswith("FieldValue")
