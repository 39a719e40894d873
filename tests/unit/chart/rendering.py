"""Render, lint and validate the Helm chart in-process, with no helm binary and no cluster.

Rendering and linting use Helm v4's own Go SDK through ``helm-python-sdk`` (a PyPI wheel that bundles
``libhelm_c``, loaded with ctypes): ``Chart.render`` is ``helm template`` (``lookup`` returns nothing,
as offline) and ``lint`` is ``helm lint``, values.schema.json included. Every rendered object is
validated offline against the Kubernetes OpenAPI schemas shipped in ``kubernetes-validate``
(``--strict``: unknown fields are errors), and custom resources against the CRDs in the chart.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

JSON = dict[str, Any]

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "tideflow"
RELEASE = "tf"
NAMESPACE = "tideflow-system"

OLDEST_KUBERNETES = "1.28.0"
"""The chart's ``kubeVersion`` floor (Chart.yaml); manifests are validated against it and the latest."""
LATEST_KUBERNETES: str = kubernetes_validate.utils.latest_version()


# kubernetes-validate reads and parses the schema files (megabytes of JSON) on every call: read each
# once per session instead (they are never modified), so validating a render takes milliseconds.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)

KINDS_WITHOUT_SCHEMA = frozenset({"ServiceMonitor"})
"""Kinds neither Kubernetes nor the chart's CRDs define: checked field by field in the toggle tests."""

API_KEY = "given-admin-key-0123456789abcdef"

ALL_TOGGLES_NAMESPACED: JSON = {
    "watchNamespaces": ["team-a", "team-b"],
    "imagePullSecrets": [{"name": "registry"}],
    "operator": {
        "standby": {"enabled": True},
        "extraEnv": [{"name": "TIDEFLOW_WATCH_SERVER_TIMEOUT", "value": "120"}],
    },
    "runtime": {
        "image": {"repository": "registry.example.com/tideflow-runtime", "tag": "1.2.3"},
        "command": ["python", "-m", "tideflow.runtime"],
        "httpAllowlist": ["10.0.0.0/8", "*.internal.example.com"],
        "imagePullSecrets": [{"name": "registry"}],
        "serviceAccount": {"annotations": {"example.com/role": "runtime"}},
    },
    "api": {
        "replicaCount": 2,
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "tls": [{"secretName": "tideflow-tls", "hosts": ["tideflow.example.com"]}],
        },
        "bootstrap": {"apiKey": API_KEY, "organization": "team-a"},
        "maxBodyBytes": 2097152,
        "triggerHoldSeconds": 45,
    },
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "networkPolicy": {
        "enabled": True,
        "apiFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
        "metricsFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
    },
}
"""Every documented toggle on, serving two namespaces."""

ALL_TOGGLES_CLUSTERWIDE: JSON = {
    **{key: value for key, value in ALL_TOGGLES_NAMESPACED.items() if key != "watchNamespaces"},
    "networkPolicy": {**ALL_TOGGLES_NAMESPACED["networkPolicy"], "runtimeNamespaces": ["team-c"]},
}
"""Every documented toggle on, serving every namespace."""

VARIANTS: dict[str, JSON] = {
    "defaults": {},
    "all-toggles-namespaced": ALL_TOGGLES_NAMESPACED,
    "all-toggles-clusterwide": ALL_TOGGLES_CLUSTERWIDE,
}


@dataclass(frozen=True)
class Rendered:
    """The objects a render produced, in template order, and the NOTES.txt text."""

    objects: tuple[JSON, ...]
    notes: str
    sources: dict[str, str]

    def of_kind(self, kind: str) -> list[JSON]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def named(self, kind: str, name: str, namespace: str | None = None) -> JSON:
        found = [
            obj
            for obj in self.of_kind(kind)
            if obj["metadata"]["name"] == name
            and (namespace is None or obj["metadata"].get("namespace") == namespace)
        ]
        assert len(found) == 1, f"{len(found)} {kind} named {name} in {namespace}: {self.identities()}"
        return found[0]

    def identities(self) -> list[tuple[str, str | None, str]]:
        """``(kind, namespace, name)`` of every object."""
        return [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in self.objects]


def merged(*layers: JSON) -> JSON:
    """Deep-merge value layers, later ones winning (as ``helm -f a -f b`` does)."""
    result: JSON = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = merged(result[key], value)
            else:
                result[key] = copy.deepcopy(value)
    return result


def render(values: JSON | None = None, *, namespace: str = NAMESPACE, release: str = RELEASE) -> Rendered:
    """``helm template <release> charts/tideflow -n <namespace>`` with these values, parsed."""
    return _render(json.dumps(values or {}, sort_keys=True), namespace, release)


@functools.lru_cache(maxsize=128)
def _render(values: str, namespace: str, release: str) -> Rendered:
    with helm.Chart.load(CHART) as chart:
        sources = chart.render(json.loads(values), name=release, namespace=namespace, is_install=True)
    objects: list[JSON] = []
    notes = ""
    for template, text in sorted(sources.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(tuple(objects), notes, dict(sources))


def render_error(values: JSON) -> str:
    """The message Helm refuses these values with (the test fails if it renders them)."""
    try:
        render(values)
    except helm.HelmError as exc:
        return str(exc)
    raise AssertionError(f"the chart rendered values it should refuse: {values}")


def lint(values: JSON | None = None) -> list[str]:
    """``helm lint --strict``: its warnings and errors (info messages are not counted)."""
    report = helm.lint(CHART, values or {}, strict=True, namespace=NAMESPACE)
    found = [f"{m['path']}: {m['error']}" for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
    return found + [str(error) for error in report.get("errors") or []]


@functools.cache
def _custom_resource_schemas() -> dict[tuple[str, str], JSON]:
    """``(apiVersion, kind)`` -> openAPIV3Schema, for every CRD in the chart's crds/."""
    schemas: dict[tuple[str, str], JSON] = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            for version in crd["spec"]["versions"]:
                key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def crd_objects() -> list[JSON]:
    """Every CustomResourceDefinition in the chart's crds/ (Helm installs them before the templates)."""
    return [
        crd
        for path in sorted((CHART / "crds").glob("*.yaml"))
        for crd in yaml.safe_load_all(path.read_text())
        if crd
    ]


class NoSchema(Exception):
    """Neither Kubernetes nor the chart's CRDs define this kind."""


def schema_problem(obj: JSON, kubernetes_version: str) -> str | None:
    """Why ``obj`` fails its schema (strict for Kubernetes kinds), or None; NoSchema when it has none."""
    custom = _custom_resource_schemas().get((obj["apiVersion"], obj["kind"]))
    if custom is not None:
        body = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind", "metadata")}
        errors = sorted(jsonschema.Draft7Validator(custom).iter_errors(body), key=str)
        return "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors) or None
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise NoSchema(f"{obj['apiVersion']} {obj['kind']}") from exc
    except kubernetes_validate.ValidationError as exc:
        return f"{'.'.join(map(str, exc.path))}: {exc.message}"
    return None
