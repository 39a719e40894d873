"""Least-privilege RBAC: exactly these rules for the operator, the runtime pods and the API, bound where.

The expected rules are spelled out here, rule by rule, so that any added verb shows up in review as a
change to this file and to docs/security.md, which says why each one is needed.
"""

from __future__ import annotations

import re

import pytest

from tests.unit.chart.rendering import ALL_TOGGLES_NAMESPACED, CHART, JSON, NAMESPACE, Rendered, render

Rule = tuple[str, str, str]  # (apiGroup, resource, verb)


def expand(group: str, resources: str, verbs: str) -> set[Rule]:
    return {(group, resource, verb) for resource in resources.split() for verb in verbs.split()}


OPERATOR_NAMESPACED = (
    expand("tideflow.io", "workflows", "get list watch")
    | expand("tideflow.io", "workflows/status", "patch")
    | expand("tideflow.io", "workflowruns", "get list watch create patch delete")
    | expand("tideflow.io", "workflowruns/status", "patch")
    | expand("apps", "deployments", "get list watch create update delete")
    | expand("", "configmaps services", "get create update delete")
    | expand("", "events", "create")
)
OPERATOR_CLUSTER = expand("apiextensions.k8s.io", "customresourcedefinitions", "get list watch")
OPERATOR_NAMESPACES = expand("", "namespaces", "get list watch")
PEERING_CLUSTER = expand("kopf.dev", "clusterkopfpeerings", "get list watch patch")
PEERING_NAMESPACED = expand("kopf.dev", "kopfpeerings", "get list watch patch")
RUNTIME = (
    expand("tideflow.io", "workflowruns", "get list watch create")
    | expand("tideflow.io", "workflowruns/status", "patch")
    | expand("tideflow.io", "workflows/status", "patch")
)
API = (
    expand("tideflow.io", "workflows", "get list watch create update delete")
    | expand("tideflow.io", "workflows/status", "patch")
    | expand("tideflow.io", "workflowruns", "get list create patch")
    | expand("tideflow.io", "workflowruns/status", "patch")
    | expand("", "configmaps", "get list create delete")
    | expand("", "secrets", "get list create delete")
)


def rules(role: JSON) -> set[Rule]:
    found: set[Rule] = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, "no resourceNames or nonResourceURLs"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    found.add((group, resource, verb))
    return found


def cluster_role(rendered: Rendered, name: str) -> set[Rule]:
    return rules(rendered.named("ClusterRole", name))


def bindings_to(rendered: Rendered, role: str) -> list[JSON]:
    return [
        obj
        for obj in rendered.objects
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding") and obj["roleRef"]["name"] == role
    ]


def where_bound(rendered: Rendered, role: str) -> dict[tuple[str, str | None], list[tuple[str, str]]]:
    """``(binding kind, namespace)`` -> the ServiceAccounts ``(namespace, name)`` it binds the role to."""
    found: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
    for binding in bindings_to(rendered, role):
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role,
        }
        subjects = [(s["namespace"], s["name"]) for s in binding["subjects"] if s["kind"] == "ServiceAccount"]
        assert len(subjects) == len(binding["subjects"])
        found[(binding["kind"], binding["metadata"].get("namespace"))] = subjects
    return found


def test_operator_rules_serving_every_namespace() -> None:
    rendered = render()
    assert cluster_role(rendered, "tf-tideflow-operator") == OPERATOR_NAMESPACED
    assert cluster_role(rendered, "tf-tideflow-operator-cluster") == OPERATOR_CLUSTER
    operator = [(NAMESPACE, "tf-tideflow-operator")]
    assert where_bound(rendered, "tf-tideflow-operator") == {("ClusterRoleBinding", None): operator}
    assert where_bound(rendered, "tf-tideflow-operator-cluster") == {("ClusterRoleBinding", None): operator}


def test_operator_rules_serving_listed_namespaces_are_bound_in_those_only() -> None:
    rendered = render({"watchNamespaces": ["team-a", "team-b"]})
    assert cluster_role(rendered, "tf-tideflow-operator") == OPERATOR_NAMESPACED
    assert cluster_role(rendered, "tf-tideflow-operator-cluster") == OPERATOR_CLUSTER | OPERATOR_NAMESPACES
    operator = [(NAMESPACE, "tf-tideflow-operator")]
    assert where_bound(rendered, "tf-tideflow-operator") == {
        ("RoleBinding", "team-a"): operator,
        ("RoleBinding", "team-b"): operator,
    }
    assert where_bound(rendered, "tf-tideflow-operator-cluster") == {("ClusterRoleBinding", None): operator}


def test_standby_peering_rules_follow_the_peering_scope() -> None:
    clusterwide = render({"operator": {"standby": {"enabled": True}}})
    assert cluster_role(clusterwide, "tf-tideflow-operator") == OPERATOR_NAMESPACED
    assert cluster_role(clusterwide, "tf-tideflow-operator-cluster") == OPERATOR_CLUSTER | PEERING_CLUSTER
    namespaced = render({"watchNamespaces": ["team-a"], "operator": {"standby": {"enabled": True}}})
    assert cluster_role(namespaced, "tf-tideflow-operator") == OPERATOR_NAMESPACED | PEERING_NAMESPACED
    assert cluster_role(namespaced, "tf-tideflow-operator-cluster") == OPERATOR_CLUSTER | OPERATOR_NAMESPACES


def test_runtime_rules_are_bound_only_per_namespace_to_the_runtime_service_account() -> None:
    rendered = render({"watchNamespaces": ["team-a", "team-b"]})
    assert cluster_role(rendered, "tf-tideflow-runtime") == RUNTIME
    assert where_bound(rendered, "tf-tideflow-runtime") == {
        ("RoleBinding", "team-a"): [("team-a", "tideflow-runtime")],
        ("RoleBinding", "team-b"): [("team-b", "tideflow-runtime")],
    }
    for namespace in ("team-a", "team-b"):
        account = rendered.named("ServiceAccount", "tideflow-runtime", namespace)
        assert "imagePullSecrets" not in account


def test_serving_every_namespace_the_runtime_role_exists_but_is_bound_nowhere() -> None:
    """The chart cannot know the namespaces: NOTES.txt says how to bind it in each one."""
    rendered = render()
    assert cluster_role(rendered, "tf-tideflow-runtime") == RUNTIME
    assert where_bound(rendered, "tf-tideflow-runtime") == {}
    assert not [a for a in rendered.of_kind("ServiceAccount") if a["metadata"]["name"] == "tideflow-runtime"]
    assert "kubectl create rolebinding tf-tideflow-runtime --namespace NAMESPACE" in rendered.notes
    assert "--clusterrole=tf-tideflow-runtime --serviceaccount=NAMESPACE:tideflow-runtime" in rendered.notes


def test_api_rules_and_bindings() -> None:
    clusterwide = render()
    api = [(NAMESPACE, "tf-tideflow-api")]
    assert cluster_role(clusterwide, "tf-tideflow-api") == API
    assert where_bound(clusterwide, "tf-tideflow-api") == {("ClusterRoleBinding", None): api}
    namespaced = render({"watchNamespaces": ["team-a", "team-b"]})
    assert cluster_role(namespaced, "tf-tideflow-api") == API
    assert where_bound(namespaced, "tf-tideflow-api") == {
        ("RoleBinding", "team-a"): api,
        ("RoleBinding", "team-b"): api,
    }


@pytest.mark.parametrize("values", [{}, ALL_TOGGLES_NAMESPACED], ids=["defaults", "all-toggles"])
def test_no_rule_escalates_or_uses_wildcards(values: JSON) -> None:
    rendered = render(values)
    for role in rendered.of_kind("ClusterRole") + rendered.of_kind("Role"):
        for group, resource, verb in rules(role):
            assert "*" not in (group, resource, verb), role["metadata"]["name"]
            assert verb not in ("escalate", "bind", "impersonate"), role["metadata"]["name"]
            assert resource not in (
                "roles",
                "rolebindings",
                "clusterroles",
                "clusterrolebindings",
                "pods/exec",
            )
            if resource == "secrets":
                assert role["metadata"]["name"] == "tf-tideflow-api", "only the API touches Secrets"


def test_rbac_create_false_renders_no_rbac_but_keeps_the_service_accounts() -> None:
    rendered = render({"rbac": {"create": False}, "watchNamespaces": ["team-a"]})
    kinds = {obj["kind"] for obj in rendered.objects}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert {a["metadata"]["name"] for a in rendered.of_kind("ServiceAccount")} == {
        "tf-tideflow-operator",
        "tf-tideflow-api",
        "tideflow-runtime",
    }


def test_service_account_names_can_be_chosen_or_brought() -> None:
    rendered = render(
        {
            "watchNamespaces": ["team-a"],
            "operator": {"serviceAccount": {"create": False, "name": "ops"}},
            "api": {"serviceAccount": {"name": "rest"}},
            "runtime": {"serviceAccount": {"create": False, "name": "runner"}},
        }
    )
    assert {a["metadata"]["name"] for a in rendered.of_kind("ServiceAccount")} == {"rest"}
    operator = rendered.named("Deployment", "tf-tideflow-operator")["spec"]["template"]["spec"]
    assert operator["serviceAccountName"] == "ops"
    env = {e["name"]: e.get("value") for e in operator["containers"][0]["env"]}
    assert env["TIDEFLOW_RUNTIME_SERVICE_ACCOUNT"] == "runner"
    assert where_bound(rendered, "tf-tideflow-operator")[("RoleBinding", "team-a")] == [(NAMESPACE, "ops")]
    assert where_bound(rendered, "tf-tideflow-runtime")[("RoleBinding", "team-a")] == [("team-a", "runner")]
    assert (
        rendered.named("Deployment", "tf-tideflow-api")["spec"]["template"]["spec"]["serviceAccountName"]
        == "rest"
    )


def test_every_rule_in_the_templates_says_why() -> None:
    """Each ``- apiGroups:`` line of a role template follows a comment explaining the rule."""
    counted = 0
    for template in sorted((CHART / "templates").glob("*-rbac.yaml")):
        lines = template.read_text().splitlines()
        for number, line in enumerate(lines):
            if re.match(r"^\s*- apiGroups:", line):
                counted += 1
                previous = next(
                    lines[i] for i in range(number - 1, -1, -1) if not lines[i].strip().startswith("{{")
                )
                assert previous.strip().startswith("#"), f"{template.name}:{number + 1} has no comment"
    assert counted >= 15
