"""The restricted Pod Security Standard, as a checker of pod specs (no cluster needed).

Implements every control of the ``restricted`` profile (which includes ``baseline``) as the Pod
Security Admission controller evaluates it for a Linux pod, following
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (policy version 1.30+):

baseline: host namespaces, privileged containers, capabilities beyond the baseline set, hostPath
volumes, host ports, AppArmor, SELinux, ``/proc`` mount type, seccomp ``Unconfined``, unsafe sysctls,
Windows HostProcess; restricted: volume types, privilege escalation, running as non-root, non-root
user id, seccomp ``RuntimeDefault``/``Localhost``, capabilities (drop ``ALL``, add at most
``NET_BIND_SERVICE``).

``violations`` returns one message per failed control and container, naming the field, so a test's
failure says what to fix. ``pod_templates`` finds the pod spec of every workload kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

JSON = dict[str, Any]

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
"""The only volume sources the restricted profile allows (a volume's other key is its ``name``)."""

RESTRICTED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})

SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
SECCOMP_RESTRICTED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"

_WORKLOAD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def pod_templates(manifest: JSON) -> Iterator[tuple[str, JSON]]:
    """``(description, pod object)`` for a workload's pod (template); nothing for other kinds."""
    path = _WORKLOAD_TEMPLATE_PATHS.get(manifest.get("kind", ""))
    if path is None:
        return
    pod: Any = manifest
    for key in path:
        pod = pod[key]
    meta = manifest.get("metadata") or {}
    yield f"{manifest['kind']}/{meta.get('name')}", pod


def _containers(spec: JSON) -> Iterator[tuple[str, JSON]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name')}]", container


def violations(pod: JSON) -> list[str]:
    """Every restricted-profile control the pod (``metadata`` and ``spec``) fails, as messages."""
    spec: JSON = pod.get("spec") or {}
    annotations: JSON = (pod.get("metadata") or {}).get("annotations") or {}
    pod_sc: JSON = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    found: list[str] = []

    # baseline: host namespaces
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"spec.{field} must be unset or false")

    # baseline: Windows HostProcess
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("spec.securityContext.windowsOptions.hostProcess must be unset or false")

    # baseline: hostPath volumes; restricted: volume types
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            found.append(f"spec.volumes[{volume.get('name')}]: hostPath volumes are forbidden")
        for kind in sorted(kinds - RESTRICTED_VOLUME_TYPES - {"hostPath"}):
            found.append(f"spec.volumes[{volume.get('name')}]: volume type {kind} is not allowed")

    # baseline: sysctls
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"spec.securityContext.sysctls: {sysctl.get('name')} is not a safe sysctl")

    # baseline: SELinux, AppArmor, seccomp at pod level
    found.extend(_selinux(pod_sc, "spec.securityContext"))
    found.extend(_apparmor(pod_sc, "spec.securityContext"))
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append("spec.securityContext.seccompProfile.type must not be Unconfined")
    for key, value in annotations.items():
        if key.startswith(APPARMOR_ANNOTATION) and not (
            value in ("runtime/default", "") or str(value).startswith("localhost/")
        ):
            found.append(f"metadata.annotations[{key}] must be runtime/default or localhost/*")

    # restricted: runAsUser 0 at pod level
    if pod_sc.get("runAsUser") == 0:
        found.append("spec.securityContext.runAsUser must not be 0")

    pod_non_root = pod_sc.get("runAsNonRoot")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    for where, container in containers:
        sc: JSON = container.get("securityContext") or {}
        at = f"spec.{where}.securityContext"
        # baseline: privileged, host ports, procMount, Windows HostProcess
        if sc.get("privileged"):
            found.append(f"{at}.privileged must be unset or false")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"spec.{where}.ports: hostPort {port['hostPort']} is forbidden")
        if sc.get("procMount") not in (None, "Default"):
            found.append(f"{at}.procMount must be unset or Default")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"{at}.windowsOptions.hostProcess must be unset or false")
        found.extend(_selinux(sc, at))
        found.extend(_apparmor(sc, at))
        # restricted: privilege escalation
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{at}.allowPrivilegeEscalation must be false")
        # restricted: running as non-root (the container's setting wins over the pod's)
        non_root = sc.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            found.append(f"{at}.runAsNonRoot must be true (here or in spec.securityContext)")
        if sc.get("runAsUser") == 0:
            found.append(f"{at}.runAsUser must not be 0")
        # restricted: seccomp (the container's profile wins over the pod's)
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in SECCOMP_RESTRICTED:
            found.append(
                f"{at}.seccompProfile.type must be RuntimeDefault or Localhost "
                f"(here or in spec.securityContext), not {seccomp}"
            )
        # restricted: capabilities
        capabilities: JSON = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{at}.capabilities.drop must include ALL")
        for capability in capabilities.get("add") or []:
            if capability not in RESTRICTED_ADDED_CAPABILITIES:
                found.append(f"{at}.capabilities.add: {capability} is not allowed (only NET_BIND_SERVICE)")
    return found


def _selinux(security_context: JSON, at: str) -> list[str]:
    options: JSON = security_context.get("seLinuxOptions") or {}
    found = []
    if options.get("type", "") not in SELINUX_TYPES:
        found.append(f"{at}.seLinuxOptions.type {options['type']} is not allowed")
    for field in ("user", "role"):
        if options.get(field):
            found.append(f"{at}.seLinuxOptions.{field} must be unset")
    return found


def _apparmor(security_context: JSON, at: str) -> list[str]:
    profile = (security_context.get("appArmorProfile") or {}).get("type")
    if profile is not None and profile not in APPARMOR_TYPES:
        return [f"{at}.appArmorProfile.type must be RuntimeDefault or Localhost, not {profile}"]
    return []
