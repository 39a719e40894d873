"""Every pod the chart renders, and every runtime pod the operator builds, passes the restricted PSS.

The runtime pods are built by :func:`tideflow.operator.builders.deployment` with the settings the
chart gives the operator (read from the rendered operator container's environment, as
``python -m tideflow.operator`` reads them), for every example Workflow. The checker itself is tested
first: each control must refuse a pod that breaks it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.unit.chart import pss
from tests.unit.chart.rendering import JSON, ROOT, VARIANTS, Rendered, render
from tideflow.core.models import WorkflowSpec
from tideflow.operator import builders
from tideflow.operator.settings import OperatorSettings

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def chart_pods(rendered: Rendered) -> list[tuple[str, JSON]]:
    return [found for obj in rendered.objects for found in pss.pod_templates(obj)]


def operator_settings(rendered: Rendered) -> OperatorSettings:
    """What ``python -m tideflow.operator`` reads from the environment the chart gives it."""
    container = rendered.named("Deployment", "tf-tideflow-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return OperatorSettings.from_env({e["name"]: e["value"] for e in container["env"] if "value" in e})


def runtime_deployment(example: Path, settings: OperatorSettings) -> JSON:
    workflow: JSON = yaml.safe_load(example.read_text())
    workflow["metadata"].update(namespace="team-a", uid="0c8f4e4e-7d2b-4f8e-9a55-3f1b2a0d9c11")
    return builders.deployment(workflow, WorkflowSpec.model_validate(workflow["spec"]), settings, 1)


# --- the checker refuses what the standard refuses --------------------------------------------------

COMPLIANT: JSON = {
    "metadata": {"name": "ok"},
    "spec": {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "app",
                "image": "example",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
    },
}


def _container(pod: JSON) -> JSON:
    container: JSON = pod["spec"]["containers"][0]
    return container


BREAKS: dict[str, tuple[Callable[[JSON], object], str]] = {
    "hostNetwork": (lambda p: p["spec"].update(hostNetwork=True), "hostNetwork"),
    "hostPID": (lambda p: p["spec"].update(hostPID=True), "hostPID"),
    "hostIPC": (lambda p: p["spec"].update(hostIPC=True), "hostIPC"),
    "hostPath": (lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    "nfs volume": (lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "s"}}), "nfs"),
    "privileged": (lambda p: _container(p)["securityContext"].update(privileged=True), "privileged"),
    "hostPort": (lambda p: _container(p).update(ports=[{"containerPort": 80, "hostPort": 80}]), "hostPort"),
    "escalation unset": (
        lambda p: _container(p)["securityContext"].pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation",
    ),
    "runAsNonRoot unset": (lambda p: p["spec"]["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
    "runAsNonRoot false in container": (
        lambda p: _container(p)["securityContext"].update(runAsNonRoot=False),
        "runAsNonRoot",
    ),
    "runAsUser 0": (lambda p: _container(p)["securityContext"].update(runAsUser=0), "runAsUser"),
    "pod runAsUser 0": (lambda p: p["spec"]["securityContext"].update(runAsUser=0), "runAsUser"),
    "seccomp unset": (lambda p: p["spec"]["securityContext"].pop("seccompProfile"), "seccompProfile"),
    "seccomp unconfined in container": (
        lambda p: _container(p)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        "seccompProfile",
    ),
    "capabilities not dropped": (lambda p: _container(p)["securityContext"].pop("capabilities"), "drop"),
    "capability added": (
        lambda p: _container(p)["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
        "NET_ADMIN",
    ),
    "procMount": (lambda p: _container(p)["securityContext"].update(procMount="Unmasked"), "procMount"),
    "selinux type": (
        lambda p: p["spec"]["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
        "seLinuxOptions",
    ),
    "selinux user": (
        lambda p: _container(p)["securityContext"].update(seLinuxOptions={"user": "root"}),
        "seLinuxOptions.user",
    ),
    "apparmor unconfined": (
        lambda p: _container(p)["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
        "appArmorProfile",
    ),
    "apparmor annotation": (
        lambda p: p["metadata"].update(annotations={pss.APPARMOR_ANNOTATION + "app": "unconfined"}),
        "apparmor",
    ),
    "unsafe sysctl": (
        lambda p: p["spec"]["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "kernel.msgmax",
    ),
    "hostProcess": (
        lambda p: p["spec"]["securityContext"].update(windowsOptions={"hostProcess": True}),
        "hostProcess",
    ),
    "bad init container": (
        lambda p: p["spec"].update(initContainers=[{"name": "init", "image": "x"}]),
        "initContainers[init]",
    ),
}


def test_the_checker_accepts_a_compliant_pod() -> None:
    assert pss.violations(COMPLIANT) == []
    allowed = copy.deepcopy(COMPLIANT)
    _container(allowed)["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    allowed["spec"]["securityContext"]["sysctls"] = [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}
    ]
    assert pss.violations(allowed) == []


@pytest.mark.parametrize("control", BREAKS)
def test_the_checker_refuses_each_violation(control: str) -> None:
    pod = copy.deepcopy(COMPLIANT)
    breaker, expected = BREAKS[control]
    breaker(pod)
    found = pss.violations(pod)
    assert found, f"{control} was not caught"
    assert any(expected in message for message in found), found


# --- the chart's pods ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_chart_pod_passes_the_restricted_standard(variant: str) -> None:
    pods = chart_pods(render(VARIANTS[variant]))
    assert {name for name, _ in pods} >= {"Deployment/tf-tideflow-operator", "Deployment/tf-tideflow-api"}
    for name, pod in pods:
        assert pss.violations(pod) == [], name


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_chart_container_is_read_only_bounded_and_probed(variant: str) -> None:
    for name, pod in chart_pods(render(VARIANTS[variant])):
        for container in pod["spec"]["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            if name.startswith("Deployment/"):
                assert container["livenessProbe"], name
                assert container["readinessProbe"], name


def test_only_the_components_that_call_the_api_server_get_a_token() -> None:
    rendered = render()
    tokens = {name: pod["spec"]["automountServiceAccountToken"] for name, pod in chart_pods(rendered)}
    assert tokens == {
        "Deployment/tf-tideflow-operator": True,
        "Deployment/tf-tideflow-api": True,
        "Pod/tf-tideflow-test-connection": False,
    }


def test_the_chart_the_image_and_the_operator_agree_on_the_user_id() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^ARG UID=(\d+)$", dockerfile, re.MULTILINE)
    assert match is not None
    uid = int(match.group(1))
    for _, pod in chart_pods(render()):
        assert pod["spec"]["securityContext"]["runAsUser"] == uid
        assert pod["spec"]["securityContext"]["runAsGroup"] == uid
    runtime = runtime_deployment(EXAMPLES[0], operator_settings(render()))
    assert runtime["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


# --- the runtime pods the operator builds -------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_runtime_pod_the_operator_builds_passes_the_restricted_standard(
    example: Path, variant: str
) -> None:
    rendered = render(VARIANTS[variant])
    deployment = runtime_deployment(example, operator_settings(rendered))
    template = deployment["spec"]["template"]
    assert pss.violations(template) == []
    container = template["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_runtime_pods_get_what_the_chart_prepared_for_them(variant: str) -> None:
    """The chart's runtime ServiceAccount, image, port and allowlist are what the operator builds with."""
    values = VARIANTS[variant]
    rendered = render(values)
    settings = operator_settings(rendered)
    deployment = runtime_deployment(EXAMPLES[0], settings)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    runtime = values.get("runtime", {})
    assert pod["serviceAccountName"] == "tideflow-runtime"
    for namespace in values.get("watchNamespaces", []):
        assert rendered.named("ServiceAccount", pod["serviceAccountName"], namespace)
    image = runtime.get("image", {})
    expected_image = f"{image.get('repository', 'ghcr.io/tideflow/tideflow')}:{image.get('tag', '0.1.0')}"
    assert container["image"] == expected_image
    assert container["command"] == ["python", "-m", "tideflow.runtime"]
    assert container["ports"][0]["containerPort"] == 8080
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TIDEFLOW_HTTP_ALLOWLIST"] == ",".join(runtime.get("httpAllowlist", []))
    for policy in rendered.of_kind("NetworkPolicy"):
        if policy["metadata"]["name"] == "tf-tideflow-runtime":
            selector = policy["spec"]["podSelector"]["matchLabels"]
            assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
            assert policy["spec"]["ingress"][0]["ports"][0]["port"] == container["ports"][0]["containerPort"]
