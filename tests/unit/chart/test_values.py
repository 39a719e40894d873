"""Every value is documented three times over, and values.schema.json refuses bad ones.

A value's ``# --`` comment in values.yaml is its description in values.schema.json, word for word,
and docs/install.md lists it; Helm (the SDK's render, as ``helm install`` does) refuses values the
schema does not allow, naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import jsonschema
import pytest
import yaml

from tests.unit.chart.rendering import CHART, JSON, ROOT, render_error

SCHEMA: JSON = json.loads((CHART / "values.schema.json").read_text())
VALUES: JSON = yaml.safe_load((CHART / "values.yaml").read_text())


def documented_values() -> dict[str, str]:
    """``dotted.path`` -> the ``# --`` comment above that key in values.yaml."""
    found: dict[str, str] = {}
    path: list[str] = []
    comment: str | None = None
    for line in (CHART / "values.yaml").read_text().splitlines():
        doc = re.match(r"^\s*# -- (.+)$", line)
        if doc:
            comment = doc.group(1)
            continue
        key = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):", line)
        if key:
            path = [*path[: len(key.group(1)) // 2], key.group(2)]
            if comment is not None:
                found[".".join(path)] = comment
        if line.strip() and not line.strip().startswith("#"):
            comment = None
    return found


def leaves(values: JSON, prefix: str = "") -> Iterator[str]:
    """Paths of the values a user sets: scalars, lists and the empty or free-form maps."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in FREE_FORM:
            yield from leaves(value, f"{path}.")
        else:
            yield path


FREE_FORM = {
    f"{component}.{field}"
    for component in ("operator", "api")
    for field in ("podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe")
}
"""Maps passed through to Kubernetes as they are: documented as one value."""


def schema_node(path: str) -> JSON:
    node = SCHEMA
    for part in path.split("."):
        node = node["properties"][part]
    return node


def schema_leaves(node: JSON, prefix: str = "") -> Iterator[str]:
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        if "properties" in child and path not in FREE_FORM and child.get("additionalProperties") is False:
            yield from schema_leaves(child, f"{path}.")
        else:
            yield path


def test_every_value_has_a_comment_in_values_yaml() -> None:
    documented = documented_values()
    missing = [path for path in leaves(VALUES) if path not in documented]
    assert missing == []


def test_every_value_is_in_the_schema_with_its_comment_as_description() -> None:
    documented = documented_values()
    for path in leaves(VALUES):
        assert schema_node(path).get("description") == documented[path], path
    assert set(schema_leaves(SCHEMA)) - {"global"} == set(leaves(VALUES))


def test_every_value_is_in_the_values_table_of_the_install_guide() -> None:
    guide = (ROOT / "docs" / "install.md").read_text()
    table = {match.group(1) for match in re.finditer(r"^\| `([A-Za-z0-9.]+)` \|", guide, re.MULTILINE)}
    assert set(leaves(VALUES)) - table == set(), "add them to docs/install.md"
    assert table - set(leaves(VALUES)) == set(), "docs/install.md lists values that do not exist"


def test_the_schema_is_valid_draft_7_and_admits_the_defaults() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)


BAD_VALUES: dict[str, tuple[JSON, str]] = {
    "unknown top-level key": ({"watchNamespace": ["a"]}, "watchNamespace"),
    "unknown nested key": ({"operator": {"replicas": 3}}, "replicas"),
    "namespace not a DNS label": ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
    "namespaces not a list": ({"watchNamespaces": "team-a"}, "/watchNamespaces"),
    "duplicate namespace": ({"watchNamespaces": ["a", "a"]}, "/watchNamespaces"),
    "pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "empty repository": ({"image": {"repository": ""}}, "/image/repository"),
    "resync zero": ({"operator": {"resyncSeconds": 0}}, "/operator/resyncSeconds"),
    "reconciles zero": ({"operator": {"maxConcurrentReconciles": 0}}, "/operator/maxConcurrentReconciles"),
    "wake lead too long": (
        {"operator": {"scheduleWakeLeadSeconds": 7200}},
        "/operator/scheduleWakeLeadSeconds",
    ),
    "standby not boolean": ({"operator": {"standby": {"enabled": "yes"}}}, "/operator/standby/enabled"),
    "port out of range": ({"runtime": {"port": 70000}}, "/runtime/port"),
    "metrics port zero": ({"operator": {"metrics": {"port": 0}}}, "/operator/metrics/port"),
    "allowlist as a string": ({"runtime": {"httpAllowlist": "10.0.0.0/8"}}, "/runtime/httpAllowlist"),
    "allowlist entry with a comma": ({"runtime": {"httpAllowlist": ["a,b"]}}, "/runtime/httpAllowlist/0"),
    "runtime account empty": ({"runtime": {"serviceAccount": {"name": ""}}}, "/runtime/serviceAccount/name"),
    "api replicas zero": ({"api": {"replicaCount": 0}}, "/api/replicaCount"),
    "service type": ({"api": {"service": {"type": "ExternalName"}}}, "/api/service/type"),
    "ingress path type": (
        {"api": {"ingress": {"hosts": [{"host": "h", "paths": [{"path": "/", "pathType": "Regex"}]}]}}},
        "/api/ingress/hosts/0/paths/0/pathType",
    ),
    "ingress path relative": (
        {"api": {"ingress": {"hosts": [{"host": "h", "paths": [{"path": "api", "pathType": "Prefix"}]}]}}},
        "/api/ingress/hosts/0/paths/0/path",
    ),
    "short api key": ({"api": {"bootstrap": {"apiKey": "too-short"}}}, "/api/bootstrap/apiKey"),
    "api key and existing secret": (
        {"api": {"bootstrap": {"apiKey": "0123456789abcdef0123", "existingSecret": "mine"}}},
        "/api/bootstrap/apiKey",
    ),
    "organization": ({"api": {"bootstrap": {"organization": "Not An Org"}}}, "/api/bootstrap/organization"),
    "runtime address": ({"api": {"runtimeAddress": "ip"}}, "/api/runtimeAddress"),
    "body limit too small": ({"api": {"maxBodyBytes": 10}}, "/api/maxBodyBytes"),
    "hold seconds zero": ({"api": {"triggerHoldSeconds": 0}}, "/api/triggerHoldSeconds"),
    "log level": ({"api": {"logLevel": "TRACE"}}, "/api/logLevel"),
    "extra env without name": ({"api": {"extraEnv": [{"value": "x"}]}}, "/api/extraEnv/0"),
    "scrape interval": (
        {"metrics": {"serviceMonitor": {"interval": "often"}}},
        "/metrics/serviceMonitor/interval",
    ),
    "network peer with a typo": (
        {"networkPolicy": {"apiFrom": [{"namespaceSelecter": {}}]}},
        "/networkPolicy/apiFrom/0",
    ),
    "pull secret as a string": ({"imagePullSecrets": ["registry"]}, "/imagePullSecrets/0"),
    "annotation value not a string": ({"api": {"podAnnotations": {"a": 1}}}, "/api/podAnnotations/a"),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_bad_values_are_refused_with_their_path(case: str) -> None:
    values, path = BAD_VALUES[case]
    message = render_error(values)
    assert "values don't meet the specifications of the schema" in message
    assert path in message, message
