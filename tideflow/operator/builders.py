"""The objects a deployed Workflow owns, built as plain data from the Workflow and the settings.

Everything here is pure: the same Workflow and settings always give the same ConfigMap (the
definition), Deployment (the runtime pod) and Service, so they are tested without a cluster and the
reconcile only compares and writes. Each child carries ``tideflow.io/spec-hash``, the hash of what
the operator wants it to be, so that a reconcile updates a child only when that changes (fields the
API server defaults never cause a write); the pod template carries the definition's hash, so a
changed definition rolls the runtime.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from tideflow.core import names
from tideflow.core.catalog import secret_env_prefix
from tideflow.core.models import RuntimeSpec, WorkflowSpec
from tideflow.operator.settings import OperatorSettings

JSON = dict[str, Any]
SPEC_HASH = f"{names.GROUP}/spec-hash"
DEFINITION_HASH = f"{names.GROUP}/definition-hash"
DEFINITION_KEY = "definition.json"
DEFINITION_DIR = "/etc/tideflow"
COMPONENT = "runtime"
MANAGED_BY = "tideflow-operator"
DEFAULT_RESOURCES: JSON = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def child_name(workflow_name: str) -> str:
    """Name of the ConfigMap, Deployment and Service: the Workflow's (a DNS label of at most 63)."""
    return workflow_name


def selector_labels(workflow_name: str) -> dict[str, str]:
    return {names.LABEL_WORKFLOW: workflow_name, names.LABEL_COMPONENT: COMPONENT}


def selector_string(workflow_name: str) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(workflow_name).items()))


def labels(workflow_name: str) -> dict[str, str]:
    return {
        **selector_labels(workflow_name),
        names.LABEL_NAME: "tideflow-runtime",
        names.LABEL_INSTANCE: workflow_name,
        names.LABEL_PART_OF: names.PART_OF,
        names.LABEL_MANAGED_BY: MANAGED_BY,
    }


def owner_reference(workflow: JSON) -> JSON:
    meta = workflow["metadata"]
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.WORKFLOW_KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def endpoint(workflow_name: str, namespace: str, settings: OperatorSettings) -> str:
    return f"http://{child_name(workflow_name)}.{namespace}.svc.cluster.local:{settings.runtime_port}"


def definition_document(spec: WorkflowSpec) -> JSON:
    """What the runtime executes: the graph and its settings, nothing else.

    The ConfigMap's content (and so the runtime pod template's hash) changes only when execution can:
    moving nodes on the editor's canvas (``position``), renaming or describing the workflow, or
    changing its schedule or lifecycle (the operator's business) never restarts the runtime.
    """
    data = spec.to_dict()
    document: JSON = {key: data[key] for key in ("nodes", "connections", "settings") if key in data}
    document["nodes"] = [
        {k: v for k, v in node.items() if k != "position"} for node in document.get("nodes", [])
    ]
    return document


def _with_hash(obj: JSON) -> JSON:
    obj["metadata"].setdefault("annotations", {})[SPEC_HASH] = digest(obj)
    return obj


def config_map(workflow: JSON, spec: WorkflowSpec) -> JSON:
    name = workflow["metadata"]["name"]
    document = definition_document(spec)
    return _with_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": child_name(name),
                "namespace": workflow["metadata"]["namespace"],
                "labels": labels(name),
                "annotations": {DEFINITION_HASH: digest(document)},
                "ownerReferences": [owner_reference(workflow)],
            },
            "data": {DEFINITION_KEY: json.dumps(document, sort_keys=True, indent=2)},
        }
    )


def service(workflow: JSON, settings: OperatorSettings) -> JSON:
    name = workflow["metadata"]["name"]
    return _with_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": child_name(name),
                "namespace": workflow["metadata"]["namespace"],
                "labels": labels(name),
                "ownerReferences": [owner_reference(workflow)],
            },
            "spec": {
                "type": "ClusterIP",
                "selector": selector_labels(name),
                "ports": [
                    {"name": "http", "port": settings.runtime_port, "targetPort": "http", "protocol": "TCP"}
                ],
            },
        }
    )


def _resources(runtime: RuntimeSpec | None) -> JSON:
    """The container's resources: the Workflow's, or the defaults when it sets none."""
    if runtime is not None and runtime.resources is not None:
        resources = {k: v for k, v in runtime.resources.to_dict().items() if v}
        if resources:
            return resources
    return copy.deepcopy(DEFAULT_RESOURCES)


def deployment(workflow: JSON, spec: WorkflowSpec, settings: OperatorSettings, replicas: int) -> JSON:
    """The runtime Deployment; ``replicas`` comes from the lifecycle decision, not from the spec."""
    name = workflow["metadata"]["name"]
    namespace = workflow["metadata"]["namespace"]
    definition_hash = digest(definition_document(spec))
    env: list[JSON] = [
        {"name": "TIDEFLOW_WORKFLOW", "value": name},
        {"name": "TIDEFLOW_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TIDEFLOW_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "TIDEFLOW_PORT", "value": str(settings.runtime_port)},
        {"name": "TIDEFLOW_DEFINITION_PATH", "value": f"{DEFINITION_DIR}/{DEFINITION_KEY}"},
        {"name": "TIDEFLOW_HTTP_ALLOWLIST", "value": settings.http_allowlist},
    ]
    env_from = [
        {"prefix": secret_env_prefix(ref.name), "secretRef": {"name": ref.name}}
        for ref in (spec.runtime.secret_refs if spec.runtime else [])
    ]
    container: JSON = {
        "name": "runtime",
        "image": settings.runtime_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(settings.runtime_command),
        "env": env,
        "ports": [{"name": "http", "containerPort": settings.runtime_port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            # A busy Python process can take more than the default second to answer: only a runtime
            # that stays unanswering for three checks in a row (25 s after its start at the earliest)
            # is restarted.
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": _resources(spec.runtime),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "definition", "mountPath": DEFINITION_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108  (an emptyDir, the only writable path)
        ],
    }
    if env_from:
        container["envFrom"] = env_from
    return _with_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": child_name(name),
                "namespace": namespace,
                "labels": labels(name),
                "ownerReferences": [owner_reference(workflow)],
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector_labels(name)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": labels(name), "annotations": {DEFINITION_HASH: definition_hash}},
                    "spec": {
                        "serviceAccountName": settings.runtime_service_account,
                        "automountServiceAccountToken": True,
                        "terminationGracePeriodSeconds": 30,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "runAsGroup": 10001,
                            "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                        "volumes": [
                            {"name": "definition", "configMap": {"name": child_name(name)}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        ],
                    },
                },
            },
        }
    )
