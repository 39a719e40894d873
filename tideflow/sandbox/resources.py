"""The resource types the sandbox serves: built-in kinds and the ones registered by CRDs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ScaleSpec:
    """Where a resource keeps the fields its ``/scale`` subresource exposes (JSON paths, dotted)."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = ".status.selector"


@dataclass(frozen=True)
class ResourceType:
    """One served resource (a group, version and plural) with what the server needs to know of it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    scale: ScaleSpec | None = None
    schema: dict[str, Any] | None = None  # openAPIV3Schema of a custom resource
    printer_columns: tuple[dict[str, Any], ...] = ()
    custom: bool = False  # custom resources: no strategic merge patch, schema validation, pruning
    # Kinds whose spec changes bump metadata.generation (the rest keep generation at 1 or unset).
    tracks_generation: bool = True
    extra_subresources: tuple[str, ...] = field(default=())
    # Field selectors the kind supports besides metadata.name and metadata.namespace.
    selectable_fields: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def subresources(self) -> tuple[str, ...]:
        subs: list[str] = []
        if self.status_subresource:
            subs.append("status")
        if self.scale is not None:
            subs.append("scale")
        return (*subs, *self.extra_subresources)

    def url(self, namespace: str | None = None, name: str | None = None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        ns = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{prefix}{ns}/{self.plural}" + (f"/{name}" if name else "")


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    status: bool = False,
    scale: ScaleSpec | None = None,
    categories: tuple[str, ...] = (),
    generation: bool = True,
    extra: tuple[str, ...] = (),
    fields: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower(),
        short_names=short,
        status_subresource=status,
        scale=scale,
        categories=categories,
        tracks_generation=generation,
        extra_subresources=extra,
        selectable_fields=fields,
    )


_POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

BUILTINS: tuple[ResourceType, ...] = (
    _builtin(
        "", "v1", "namespaces", "Namespace", namespaced=False, short=("ns",), status=True, generation=False
    ),
    _builtin("", "v1", "configmaps", "ConfigMap", short=("cm",), generation=False),
    _builtin("", "v1", "secrets", "Secret", generation=False, fields=("type",)),
    _builtin(
        "", "v1", "services", "Service", short=("svc",), status=True, categories=("all",), generation=False
    ),
    _builtin("", "v1", "endpoints", "Endpoints", short=("ep",), generation=False),
    _builtin(
        "",
        "v1",
        "pods",
        "Pod",
        short=("po",),
        status=True,
        categories=("all",),
        generation=False,
        extra=("log",),
    ),
    _builtin("", "v1", "events", "Event", short=("ev",), generation=False, fields=_EVENT_FIELDS),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",), generation=False),
    _builtin(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short=("deploy",),
        status=True,
        scale=ScaleSpec(".spec.replicas", ".status.replicas", None),
        categories=("all",),
    ),
    _builtin(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        short=("ev",),
        generation=False,
        fields=tuple(f.replace("involvedObject", "regarding") for f in _EVENT_FIELDS),
    ),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease", generation=False),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        status=True,
        categories=("api-extensions",),
    ),
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", generation=False),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", generation=False),
    _builtin(
        "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False, generation=False
    ),
    _builtin(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
        generation=False,
    ),
    _builtin("networking.k8s.io", "v1", "ingresses", "Ingress", short=("ing",), status=True),
    _builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    _builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), status=True),
)


def from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition registers, one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    result: list[ResourceType] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        scale_spec = subresources.get("scale")
        scale = (
            ScaleSpec(
                scale_spec.get("specReplicasPath", ".spec.replicas"),
                scale_spec.get("statusReplicasPath", ".status.replicas"),
                scale_spec.get("labelSelectorPath"),
            )
            if isinstance(scale_spec, dict)
            else None
        )
        result.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version["name"],
                plural=names.get("plural", ""),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names.get("kind", "").lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                scale=scale,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                custom=True,
                selectable_fields=tuple(
                    str(f.get("jsonPath", "")).lstrip(".") for f in version.get("selectableFields") or ()
                ),
            )
        )
    return result


def storage_version(crd: dict[str, Any]) -> str | None:
    for version in (crd.get("spec") or {}).get("versions") or []:
        if version.get("storage"):
            return str(version["name"])
    return None
