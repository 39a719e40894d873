"""The chart renders, lints strictly and every object it renders passes the Kubernetes schemas.

Each check runs for the defaults and for every documented toggle switched on (serving a list of
namespaces, and serving every namespace): the values a user is most likely to combine.
"""

from __future__ import annotations

import re

import pytest

from tests.unit.chart.rendering import (
    JSON,
    KINDS_WITHOUT_SCHEMA,
    LATEST_KUBERNETES,
    NAMESPACE,
    OLDEST_KUBERNETES,
    VARIANTS,
    NoSchema,
    crd_objects,
    lint,
    render,
    schema_problem,
)

CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering", "CustomResourceDefinition"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict_finds_nothing(variant: str) -> None:
    assert lint(VARIANTS[variant]) == []


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, LATEST_KUBERNETES])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_object_passes_its_schema_strictly(variant: str, version: str) -> None:
    rendered = render(VARIANTS[variant])
    problems: dict[str, str] = {}
    unchecked: set[str] = set()
    for obj in rendered.objects:
        try:
            problem = schema_problem(obj, version)
        except NoSchema:
            unchecked.add(obj["kind"])
            continue
        if problem is not None:
            problems[f"{obj['kind']}/{obj['metadata']['name']}"] = problem
    assert problems == {}
    assert unchecked <= KINDS_WITHOUT_SCHEMA


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, LATEST_KUBERNETES])
def test_the_crds_pass_the_customresourcedefinition_schema(version: str) -> None:
    for crd in crd_objects():
        assert schema_problem(crd, version) is None, crd["metadata"]["name"]


def test_a_schema_problem_is_reported_with_its_field_path() -> None:
    """The validation used above does refuse a bad manifest (so its silence means something)."""
    service: JSON = render().named("Service", "tf-tideflow-api")
    broken = {**service, "spec": {**service["spec"], "portz": []}}
    problem = schema_problem(broken, LATEST_KUBERNETES)
    assert problem is not None
    assert "portz" in problem
    peering: JSON = {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": "x"},
        "status": 1,
    }
    assert schema_problem(peering, LATEST_KUBERNETES) is not None
    with pytest.raises(NoSchema):
        schema_problem({"apiVersion": "example.com/v1", "kind": "Nothing", "metadata": {"name": "x"}}, "1.30")


@pytest.mark.parametrize("variant", VARIANTS)
def test_objects_are_labelled_namespaced_and_uniquely_named(variant: str) -> None:
    rendered = render(VARIANTS[variant])
    keys = rendered.identities()
    assert len(keys) == len(set(keys))
    for obj in rendered.objects:
        meta = obj["metadata"]
        labels = meta["labels"]
        assert labels["app.kubernetes.io/part-of"] == "tideflow"
        assert labels["app.kubernetes.io/instance"] == "tf"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "tideflow-0.1.0"
        assert labels["app.kubernetes.io/component"] in {"operator", "api", "runtime", "test"}
        assert DNS_LABEL.match(meta["name"]), meta["name"]
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta
        else:
            assert meta["namespace"], meta["name"]


def test_the_defaults_render_exactly_these_objects() -> None:
    assert sorted(render().identities(), key=str) == sorted(
        [
            ("ClusterRole", None, "tf-tideflow-api"),
            ("ClusterRole", None, "tf-tideflow-operator"),
            ("ClusterRole", None, "tf-tideflow-operator-cluster"),
            ("ClusterRole", None, "tf-tideflow-runtime"),
            ("ClusterRoleBinding", None, "tf-tideflow-api"),
            ("ClusterRoleBinding", None, "tf-tideflow-operator"),
            ("ClusterRoleBinding", None, "tf-tideflow-operator-cluster"),
            ("Deployment", NAMESPACE, "tf-tideflow-api"),
            ("Deployment", NAMESPACE, "tf-tideflow-operator"),
            ("Pod", NAMESPACE, "tf-tideflow-test-connection"),
            ("Secret", NAMESPACE, "tf-tideflow-bootstrap"),
            ("Service", NAMESPACE, "tf-tideflow-api"),
            ("Service", NAMESPACE, "tf-tideflow-operator-metrics"),
            ("ServiceAccount", NAMESPACE, "tf-tideflow-api"),
            ("ServiceAccount", NAMESPACE, "tf-tideflow-operator"),
        ],
        key=str,
    )


def test_a_long_release_name_keeps_every_name_a_dns_label() -> None:
    release = "a-release-name-of-the-longest-length-helm-allows-53ch"
    assert len(release) == 53
    rendered = render(
        {"watchNamespaces": ["team-a"], "metrics": {"serviceMonitor": {"enabled": True}}}, release=release
    )
    for obj in rendered.objects:
        assert len(obj["metadata"]["name"]) <= 63
        assert DNS_LABEL.match(obj["metadata"]["name"]), obj["metadata"]["name"]


def test_the_release_name_containing_the_chart_name_is_the_full_name() -> None:
    rendered = render(release="tideflow")
    assert rendered.named("Deployment", "tideflow-operator")
    assert render({"fullnameOverride": "flow"}).named("Deployment", "flow-api")
