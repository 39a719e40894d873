"""Fidelity of custom resource validation against the CRD's structural schema, as kube-apiserver does it.

An object violating the schema (bounds, enum, required, pattern, type) or an ``x-kubernetes-validations``
CEL rule is refused with 422 ``Invalid`` whose ``details.causes[].field`` names the field path; unknown
fields are pruned, with a ``Warning`` header under the default ``fieldValidation=Warn``, a 400 under
``Strict`` and silence under ``Ignore``; ``default``s are applied; a non-structural CRD is refused; and
``kubectl apply`` of a malformed Tideflow Workflow prints the offending field path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.conftest import Sandbox
from tests.integration.sandbox import installed_crd

JSON = dict[str, Any]

GROUP = "fidelity.test.io"
VERSION = "v1"
PLURAL = "validwidgets"
KIND = "ValidWidget"
CRD_NAME = f"{PLURAL}.{GROUP}"
API_VERSION = f"{GROUP}/{VERSION}"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

MERGE = {"Content-Type": "application/merge-patch+json"}


def _crd() -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "validwidget", "kind": KIND},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                        "colour": {
                                            "type": "string",
                                            "enum": ["red", "green", "blue"],
                                            "default": "green",
                                        },
                                        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
                                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                                        "options": {
                                            "type": "object",
                                            "default": {},
                                            "properties": {
                                                "retries": {"type": "integer", "default": 3},
                                                "verbose": {"type": "boolean"},
                                            },
                                        },
                                        "limits": {
                                            "type": "object",
                                            "properties": {
                                                "low": {"type": "integer"},
                                                "high": {"type": "integer"},
                                            },
                                            "x-kubernetes-validations": [
                                                {
                                                    "rule": "self.low <= self.high",
                                                    "message": "low must not exceed high",
                                                }
                                            ],
                                        },
                                        "extras": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        },
                                        "ident": {
                                            "type": "string",
                                            "x-kubernetes-validations": [
                                                {"rule": "self == oldSelf", "message": "ident is immutable"}
                                            ],
                                        },
                                    },
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {
                                        "phase": {"type": "string", "enum": ["Idle", "Busy"]},
                                        "count": {"type": "integer", "minimum": 0},
                                    },
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def crd(sandbox: Sandbox) -> Iterator[None]:
    """Install this module's CRD, with bounds, an enum, required fields, defaults and a CEL rule."""
    with installed_crd(sandbox, _crd()):
        yield


def _path(namespace: str, name: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


def _widget(name: str, **spec: Any) -> JSON:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": {"size": 1, **spec}}


def _causes(response: httpx.Response) -> list[JSON]:
    assert response.status_code == 422, response.text
    body: JSON = response.json()
    assert body["kind"] == "Status"
    assert body["reason"] == "Invalid"
    assert body["code"] == 422
    causes: list[JSON] = body["details"]["causes"]
    return causes


def _without(key: str) -> Callable[[JSON], None]:
    def mutate(spec: JSON) -> None:
        del spec[key]

    return mutate


def _setting(key: str, value: Any) -> Callable[[JSON], None]:
    def mutate(spec: JSON) -> None:
        spec[key] = value

    return mutate


VIOLATIONS = [
    pytest.param(
        _setting("size", 11), "spec.size", "FieldValueInvalid", "less than or equal to 10", id="above-maximum"
    ),
    pytest.param(
        _setting("size", 0),
        "spec.size",
        "FieldValueInvalid",
        "greater than or equal to 1",
        id="below-minimum",
    ),
    pytest.param(
        _setting("colour", "purple"),
        "spec.colour",
        "FieldValueNotSupported",
        'supported values: "red", "green", "blue"',
        id="enum",
    ),
    pytest.param(_without("size"), "spec.size", "FieldValueRequired", "Required value", id="required"),
    pytest.param(
        _setting("code", "abc"), "spec.code", "FieldValueInvalid", "should match '^[A-Z]{3}$'", id="pattern"
    ),
    pytest.param(
        _setting("size", "three"), "spec.size", "FieldValueTypeInvalid", "must be of type integer", id="type"
    ),
    pytest.param(
        _setting("tags", ["a", "b", "c"]),
        "spec.tags",
        "FieldValueTooMany",
        "must have at most 2 items",
        id="max-items",
    ),
    pytest.param(
        _setting("limits", {"low": 5, "high": 1}),
        "spec.limits",
        "FieldValueInvalid",
        "low must not exceed high",
        id="cel-rule",
    ),
]


@pytest.mark.parametrize(("mutate", "field", "reason", "mentions"), VIOLATIONS)
def test_schema_violation_on_create_is_422_naming_the_field(
    http: httpx.Client,
    namespace: str,
    crd: None,
    mutate: Callable[[JSON], None],
    field: str,
    reason: str,
    mentions: str,
) -> None:
    body = _widget("bad")
    mutate(body["spec"])
    response = http.post(_path(namespace), json=body)
    causes = _causes(response)
    matching = [c for c in causes if c.get("field") == field]
    assert matching, f"no cause names {field}: {causes}"
    assert matching[0]["reason"] == reason, causes
    assert mentions in matching[0]["message"], causes
    details = response.json()["details"]
    assert details["name"] == "bad"
    assert details["group"] == GROUP
    assert details["kind"] == KIND
    assert field in response.json()["message"]
    assert http.get(_path(namespace, "bad")).status_code == 404


def test_schema_violation_on_update_is_422_and_changes_nothing(
    http: httpx.Client, namespace: str, crd: None
) -> None:
    created = http.post(_path(namespace), json=_widget("w", size=2))
    assert created.status_code == 201, created.text
    patch = http.patch(_path(namespace, "w"), json={"spec": {"size": 50, "colour": "pink"}}, headers=MERGE)
    # (kube-apiserver may add a field-less cause saying the CEL rules were skipped.)
    fields = sorted(str(c.get("field")) for c in _causes(patch) if str(c.get("field", "")).startswith("spec"))
    assert fields == ["spec.colour", "spec.size"]
    current = http.get(_path(namespace, "w")).json()
    assert current["spec"]["size"] == 2
    assert current["metadata"]["resourceVersion"] == created.json()["metadata"]["resourceVersion"]

    cel = http.patch(_path(namespace, "w"), json={"spec": {"limits": {"low": 9, "high": 2}}}, headers=MERGE)
    assert [c.get("field") for c in _causes(cel)] == ["spec.limits"]


def test_transition_rule_compares_with_the_old_object(http: httpx.Client, namespace: str, crd: None) -> None:
    created = http.post(_path(namespace), json=_widget("w", ident="first"))
    assert created.status_code == 201, created.text
    allowed = http.patch(_path(namespace, "w"), json={"spec": {"size": 3}}, headers=MERGE)
    assert allowed.status_code == 200, allowed.text
    refused = http.patch(_path(namespace, "w"), json={"spec": {"ident": "second"}}, headers=MERGE)
    causes = _causes(refused)
    assert [c.get("field") for c in causes] == ["spec.ident"]
    assert "ident is immutable" in causes[0]["message"]
    assert http.get(_path(namespace, "w")).json()["spec"]["ident"] == "first"


def test_status_writes_are_validated_too(http: httpx.Client, namespace: str, crd: None) -> None:
    assert http.post(_path(namespace), json=_widget("w")).status_code == 201
    ok = http.patch(
        f"{_path(namespace, 'w')}/status", json={"status": {"phase": "Busy", "count": 2}}, headers=MERGE
    )
    assert ok.status_code == 200, ok.text
    bad = http.patch(
        f"{_path(namespace, 'w')}/status", json={"status": {"phase": "Lost", "count": -1}}, headers=MERGE
    )
    fields = sorted(str(c.get("field")) for c in _causes(bad) if str(c.get("field", "")).startswith("status"))
    assert fields == ["status.count", "status.phase"]
    assert http.get(_path(namespace, "w")).json()["status"] == {"phase": "Busy", "count": 2}


def test_duplicate_keys_in_a_map_list_are_422(http: httpx.Client, namespace: str) -> None:
    # Workflow spec.nodes is x-kubernetes-list-type: map keyed by id.
    node = {"id": "start", "type": "manual_trigger"}
    workflow = {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "dup"},
        "spec": {"nodes": [node, dict(node)]},
    }
    response = http.post(f"/apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflows", json=workflow)
    causes = _causes(response)
    assert ("spec.nodes[1]", "FieldValueDuplicate") in [(c.get("field"), c.get("reason")) for c in causes]


def test_unknown_fields_are_pruned_with_a_warning_by_default(
    http: httpx.Client, namespace: str, crd: None
) -> None:
    body = _widget("w", unknownThing=1, extras={"anything": {"goes": [1, 2]}})
    body["topLevelStray"] = True
    response = http.post(_path(namespace), json=body)
    assert response.status_code == 201, response.text
    warning = response.headers.get("Warning", "")
    assert warning.startswith("299 "), warning
    assert 'unknown field \\"spec.unknownThing\\"' in warning, warning
    assert "topLevelStray" in warning, warning

    stored = http.get(_path(namespace, "w")).json()
    assert "unknownThing" not in stored["spec"]
    assert "topLevelStray" not in stored
    # x-kubernetes-preserve-unknown-fields keeps its subtree.
    assert stored["spec"]["extras"] == {"anything": {"goes": [1, 2]}}


def test_strict_field_validation_is_400_naming_the_unknown_field(
    http: httpx.Client, namespace: str, crd: None
) -> None:
    response = http.post(_path(namespace), params={"fieldValidation": "Strict"}, json=_widget("w", bogus=1))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["kind"] == "Status"
    assert body["reason"] == "BadRequest"
    assert 'unknown field "spec.bogus"' in body["message"]
    assert http.get(_path(namespace, "w")).status_code == 404

    created = http.post(_path(namespace), params={"fieldValidation": "Strict"}, json=_widget("w"))
    assert created.status_code == 201, created.text
    patch = http.patch(
        _path(namespace, "w"),
        params={"fieldValidation": "Strict"},
        json={"spec": {"alsoBogus": 2}},
        headers=MERGE,
    )
    assert patch.status_code == 400, patch.text
    assert "spec.alsoBogus" in patch.json()["message"]


def test_ignore_field_validation_prunes_silently(http: httpx.Client, namespace: str, crd: None) -> None:
    response = http.post(_path(namespace), params={"fieldValidation": "Ignore"}, json=_widget("w", bogus=1))
    assert response.status_code == 201, response.text
    assert "Warning" not in response.headers
    assert "bogus" not in http.get(_path(namespace, "w")).json()["spec"]


def test_defaults_are_applied(http: httpx.Client, namespace: str, crd: None) -> None:
    response = http.post(_path(namespace), json=_widget("w"))
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["colour"] == "green"
    assert spec["options"] == {"retries": 3}
    stored = http.get(_path(namespace, "w")).json()["spec"]
    assert stored == {"size": 1, "colour": "green", "options": {"retries": 3}}

    explicit = http.post(_path(namespace), json=_widget("x", colour="red", options={"verbose": True}))
    assert explicit.status_code == 201, explicit.text
    assert explicit.json()["spec"]["colour"] == "red"
    assert explicit.json()["spec"]["options"] == {"verbose": True, "retries": 3}


def test_non_structural_crd_is_refused(http: httpx.Client) -> None:
    crd = _crd()
    crd["metadata"]["name"] = f"loosewidgets.{GROUP}"
    crd["spec"]["names"] = {"plural": "loosewidgets", "singular": "loosewidget", "kind": "LooseWidget"}
    # "spec" has properties but no type: not a structural schema, which apiextensions.k8s.io/v1 requires.
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] = {
        "properties": {"size": {"type": "integer"}}
    }
    response = http.post(CRDS, json=crd)
    causes = _causes(response)
    assert any(
        str(c.get("field", "")).startswith("spec.versions[0].schema.openAPIV3Schema") for c in causes
    ), causes
    assert response.json()["details"]["kind"] == "CustomResourceDefinition"
    assert http.get(f"{CRDS}/loosewidgets.{GROUP}").status_code == 404


# ----------------------------------------------------------------------------------------------
# kubectl apply of Tideflow Workflows


def _workflow(name: str, lifecycle: JSON) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "tideflow.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": name},
            "spec": {"state": "Active", "lifecycle": lifecycle},
        }
    )


def test_kubectl_apply_of_a_workflow_below_a_bound_prints_the_field_path(
    sandbox: Sandbox, namespace: str
) -> None:
    manifest = _workflow("bad-bound", {"type": "idle-shutdown", "idleTimeoutMinutes": 3})
    result = sandbox.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, result.stdout
    assert "spec.lifecycle.idleTimeoutMinutes" in result.stderr, result.stderr
    assert sandbox.kubectl("get", "wf", "bad-bound", "-n", namespace, check=False).returncode != 0


def test_kubectl_apply_of_a_workflow_breaking_a_cel_rule_prints_the_field_path(
    sandbox: Sandbox, namespace: str
) -> None:
    manifest = _workflow("bad-rule", {"type": "idle-shutdown"})
    result = sandbox.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, result.stdout
    assert "spec.lifecycle.idleTimeoutMinutes" in result.stderr, result.stderr
    assert "idleTimeoutMinutes is required when type is idle-shutdown" in result.stderr, result.stderr


def test_kubectl_apply_of_a_valid_workflow_succeeds(sandbox: Sandbox, namespace: str) -> None:
    manifest = _workflow("good", {"type": "idle-shutdown", "idleTimeoutMinutes": 30})
    result = sandbox.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    assert "workflow.tideflow.io/good created" in result.stdout
    got = yaml.safe_load(sandbox.kubectl("get", "wf", "good", "-n", namespace, "-o", "yaml").stdout)
    assert got["spec"]["lifecycle"]["idleTimeoutMinutes"] == 30
    assert got["spec"]["replicas"] == 1  # a schema default


def test_kubectl_apply_of_a_workflow_with_an_unknown_field_is_refused(
    sandbox: Sandbox, namespace: str
) -> None:
    # kubectl apply validates strictly by default (--validate=strict) and names the unknown field.
    manifest = yaml.safe_dump(
        {
            "apiVersion": "tideflow.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "typo"},
            "spec": {"replica": 2},
        }
    )
    result = sandbox.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, result.stdout
    assert "spec.replica" in result.stderr, result.stderr
