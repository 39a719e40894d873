"""The one validation of a workflow graph, shared by the operator (status ``Valid``), the API and the engine.

:func:`validate_workflow` checks what the model's types cannot: that node types exist, that configs
match their type's schema, that connections join existing nodes on ports those node types have, that
there is a trigger, that the graph has no cycle and that every ``{{ }}`` template parses and refers to
nodes that exist. Every issue carries a field path (``spec.nodes[2].config.url``) and, where one is
concerned, the node id. The function is pure and deterministic and does not raise on any definition
the model accepts; errors make a workflow invalid, warnings do not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from tideflow.core.catalog import CATALOG, NodeType, check_config, format_field_path
from tideflow.core.models import (
    MAX_ISSUE_MESSAGE_LENGTH,
    Connection,
    KubeModel,
    Node,
    ValidationIssue,
    WorkflowDefinition,
)
from tideflow.core.templating import (
    RESERVED_NAMES,
    Reference,
    TemplateError,
    parse_expression,
    parse_template,
)

__all__ = ["MAX_CONFIG_DEPTH", "Issue", "ValidationResult", "validate_workflow"]

Issue = ValidationIssue
"""One problem: ``path``, ``message`` and, when a node is concerned, ``node_id``."""

MAX_CONFIG_DEPTH: Final = 32
"""How deeply a node's config, input mappings or pass-through values may nest."""
_MAX_PATH_LENGTH: Final = 512


class ValidationResult(KubeModel):
    """The outcome of :func:`validate_workflow`."""

    valid: bool
    errors: list[ValidationIssue]
    warnings: list[ValidationIssue]
    node_count: int
    connection_count: int


def _iter_strings(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every leaf of a JSON-like value with its path, without recursion (``None`` marks too deep)."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if len(where) - len(path) > MAX_CONFIG_DEPTH:
            yield where, None
        elif isinstance(item, Mapping):
            stack.extend(((*where, str(key)), child) for key, child in reversed(list(item.items())))
        elif isinstance(item, list | tuple):
            stack.extend(((*where, index), child) for index, child in reversed(list(enumerate(item))))
        elif isinstance(item, str):
            yield where, item


class _Validator:
    def __init__(self, spec: WorkflowDefinition, prefix: str) -> None:
        self.spec = spec
        self.prefix = prefix
        self.errors: list[ValidationIssue] = []
        self.warnings: list[ValidationIssue] = []
        self.index: dict[str, int] = {}
        self.types: dict[str, NodeType] = {}
        self.edges: list[tuple[int, Connection]] = []  # connections between existing nodes
        self.ancestors: dict[str, frozenset[str]] = {}
        self.parents: dict[str, list[str]] | None = None

    def issue(self, severity: str, path: str, message: str, node_id: str | None = None) -> None:
        if len(message) > MAX_ISSUE_MESSAGE_LENGTH:
            message = message[: MAX_ISSUE_MESSAGE_LENGTH - 3] + "..."
        if len(path) > _MAX_PATH_LENGTH:
            path = path[: _MAX_PATH_LENGTH - 3] + "..."
        target = self.errors if severity == "error" else self.warnings
        target.append(ValidationIssue(path=path, message=message, node_id=node_id))

    def node_path(self, position: int, *parts: str | int) -> str:
        return format_field_path(f"{self.prefix}.nodes[{position}]", parts)

    def run(self) -> ValidationResult:
        nodes, connections = self.spec.nodes, self.spec.connections
        if not nodes:
            self.issue("error", f"{self.prefix}.nodes", "the workflow has no nodes")
        for position, node in enumerate(nodes):
            self.check_node_identity(position, node)
        self.check_connections(connections)
        has_trigger = any(node_type.is_trigger for node_type in self.types.values())
        if nodes and not has_trigger:
            triggers = ", ".join(sorted(t.id for t in CATALOG.values() if t.is_trigger))
            self.issue(
                "error", f"{self.prefix}.nodes", f"the workflow has no trigger node (one of: {triggers})"
            )
        self.check_cycles()
        if has_trigger:
            self.check_reachability(nodes)
        for position, node in enumerate(nodes):
            self.check_node_content(position, node)
        return ValidationResult(
            valid=not self.errors,
            errors=self.errors,
            warnings=self.warnings,
            node_count=len(nodes),
            connection_count=len(connections),
        )

    # -- nodes -------------------------------------------------------------------------------

    def check_node_identity(self, position: int, node: Node) -> None:
        if node.id in self.index:
            first = self.index[node.id]
            self.issue(
                "error",
                self.node_path(position, "id"),
                f"duplicate node id {node.id!r} (also {self.prefix}.nodes[{first}])",
                node.id,
            )
            return
        self.index[node.id] = position
        node_type = CATALOG.get(node.type)
        # A trigger node may be called "trigger": its output is the trigger payload {{ trigger }} gives.
        if node.id in RESERVED_NAMES and not (
            node.id == "trigger" and node_type is not None and node_type.is_trigger
        ):
            self.issue(
                "error",
                self.node_path(position, "id"),
                f"node id {node.id!r} is reserved: {{{{ {node.id} }}}} means something else in templates "
                "(only a trigger node may be called 'trigger')",
                node.id,
            )
        if node_type is None:
            known = ", ".join(sorted(CATALOG))
            self.issue(
                "error",
                self.node_path(position, "type"),
                f"unknown node type {node.type!r} (known: {known})",
                node.id,
            )
            return
        self.types[node.id] = node_type
        if node.version is not None and node.version != node_type.version:
            self.issue(
                "error",
                self.node_path(position, "version"),
                f"{node.type} has no version {node.version!r} (available: {node_type.version})",
                node.id,
            )

    def check_node_content(self, position: int, node: Node) -> None:
        for field, value in (
            ("inputMappings", node.input_mappings),
            ("passThroughValues", node.pass_through_values),
        ):
            for path, leaf in _iter_strings(value, (field,)):
                if leaf is None:
                    self.too_deep(position, node, path)
                elif field == "inputMappings":
                    self.check_template(position, node, path, leaf)
        node_type = self.types.get(node.id)
        if node_type is None or self.index.get(node.id) != position:
            return
        for issue in check_config(node_type, node.config, templates_allowed=True):
            self.issue("error", self.node_path(position, "config", *issue.path), issue.message, node.id)
        for path, leaf in _iter_strings(node.config, ("config",)):
            if leaf is None:
                self.too_deep(position, node, path)
                continue
            key = path[1] if len(path) > 1 else None
            if key not in node_type.expression_keys:
                self.check_template(position, node, path, leaf)
            elif key == "map":  # transform: expressions over the node's own input
                self.check_expression(position, node, path, leaf, check_references=False)
            else:
                self.check_expression(position, node, path, leaf, check_references=True)

    def too_deep(self, position: int, node: Node, path: tuple[str | int, ...]) -> None:
        where = self.node_path(position, *path[: MAX_CONFIG_DEPTH + 1])
        self.issue("error", where, f"nested more than {MAX_CONFIG_DEPTH} levels deep", node.id)

    def check_template(self, position: int, node: Node, path: tuple[str | int, ...], text: str) -> None:
        if "{{" not in text:
            return
        try:
            references = parse_template(text).references()
        except TemplateError as exc:
            self.issue("error", self.node_path(position, *path), f"template error: {exc}", node.id)
            return
        self.check_references(position, node, path, references)

    def check_expression(
        self, position: int, node: Node, path: tuple[str | int, ...], text: str, *, check_references: bool
    ) -> None:
        try:
            references = parse_expression(text).references()
        except TemplateError as exc:
            self.issue("error", self.node_path(position, *path), f"expression error: {exc}", node.id)
            return
        if check_references:
            self.check_references(position, node, path, references)

    def check_references(
        self, position: int, node: Node, path: tuple[str | int, ...], references: Sequence[Reference]
    ) -> None:
        for reference in references:
            if reference.root == "nodes":
                if not reference.segments or not isinstance(reference.segments[0], str):
                    continue
                target = reference.segments[0]
            elif reference.root in RESERVED_NAMES:
                continue
            else:
                target = reference.root
            where = self.node_path(position, *path)
            if target not in self.index:
                self.issue(
                    "error", where, f"{{{{ {reference} }}}} refers to unknown node {target!r}", node.id
                )
            elif target not in self.ancestors_of(node.id):
                self.issue(
                    "warning",
                    where,
                    f"{{{{ {reference} }}}} refers to node {target!r}, which does not run before "
                    f"{node.id!r}: the value is undefined unless a | default(...) filter supplies one",
                    node.id,
                )

    def ancestors_of(self, node_id: str) -> frozenset[str]:
        if self.parents is None:
            self.parents = {}
            for _, connection in self.edges:
                self.parents.setdefault(connection.target, []).append(connection.source)
        parents = self.parents
        if node_id not in self.ancestors:
            seen: set[str] = set()
            queue = deque(parents.get(node_id, ()))
            while queue:
                current = queue.popleft()
                if current not in seen:
                    seen.add(current)
                    queue.extend(parents.get(current, ()))
            self.ancestors[node_id] = frozenset(seen)
        return self.ancestors[node_id]

    # -- connections and graph ---------------------------------------------------------------

    def check_connections(self, connections: Sequence[Connection]) -> None:
        ids: dict[str, int] = {}
        seen_edges: dict[tuple[str, str, str, str], int] = {}
        for position, connection in enumerate(connections):
            path = f"{self.prefix}.connections[{position}]"
            if connection.id in ids:
                self.issue(
                    "error",
                    f"{path}.id",
                    f"duplicate connection id {connection.id!r} "
                    f"(also {self.prefix}.connections[{ids[connection.id]}])",
                )
            else:
                ids[connection.id] = position
            endpoints_ok = True
            for end, node_id in (("source", connection.source), ("target", connection.target)):
                if node_id not in self.index:
                    self.issue(
                        "error",
                        f"{path}.{end}",
                        f"connection {end} {node_id!r} is not a node of the workflow",
                    )
                    endpoints_ok = False
            if not endpoints_ok:
                continue
            if not self.check_ports(path, connection):
                continue
            key = (connection.source, connection.source_port, connection.target, connection.target_port)
            if key in seen_edges:
                self.issue(
                    "warning",
                    path,
                    f"connection repeats {self.prefix}.connections[{seen_edges[key]}] "
                    f"({connection.source}.{connection.source_port} -> {connection.target})",
                    connection.target,
                )
                continue
            seen_edges[key] = position
            self.edges.append((position, connection))

    def check_ports(self, path: str, connection: Connection) -> bool:
        ok = True
        source_type = self.types.get(connection.source)
        if source_type is not None and connection.source_port not in source_type.outputs:
            ports = ", ".join(source_type.outputs)
            self.issue(
                "error",
                f"{path}.sourcePort",
                f"{source_type.id} node {connection.source!r} has no output port {connection.source_port!r} "
                f"(its ports: {ports})",
                connection.source,
            )
            ok = False
        target_type = self.types.get(connection.target)
        if target_type is not None and connection.target_port not in target_type.inputs:
            if target_type.inputs:
                ports = ", ".join(target_type.inputs)
                detail = f"has no input port {connection.target_port!r} (its ports: {ports})"
            else:
                detail = "is a trigger and takes no input"
            self.issue(
                "error",
                f"{path}.targetPort",
                f"{target_type.id} node {connection.target!r} {detail}",
                connection.target,
            )
            ok = False
        return ok and source_type is not None and target_type is not None

    def check_cycles(self) -> None:
        """Report each strongly connected component that is a cycle once (Tarjan, iteratively)."""
        successors: dict[str, list[str]] = {}
        for _, connection in self.edges:
            successors.setdefault(connection.source, []).append(connection.target)
        order: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        components: list[list[str]] = []
        for start in self.index:
            if start in order:
                continue
            work: list[tuple[str, Iterator[str]]] = [(start, iter(successors.get(start, ())))]
            order[start] = low[start] = len(order)
            stack.append(start)
            on_stack.add(start)
            while work:
                current, children = work[-1]
                child = next(children, None)
                if child is not None:
                    if child not in order:
                        order[child] = low[child] = len(order)
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(successors.get(child, ()))))
                    elif child in on_stack:
                        low[current] = min(low[current], order[child])
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[current])
                if low[current] == order[current]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == current:
                            break
                    components.append(component)
        for component in components:
            members = set(component)
            inside = [(p, c) for p, c in self.edges if c.source in members and c.target in members]
            if not inside:
                continue
            cycle = self.describe_cycle(inside)
            position = inside[0][0]
            self.issue(
                "error",
                f"{self.prefix}.connections[{position}]",
                f"connections form a cycle: {cycle}",
                inside[0][1].source,
            )

    @staticmethod
    def describe_cycle(inside: list[tuple[int, Connection]]) -> str:
        following: dict[str, str] = {}
        for _, connection in inside:
            following.setdefault(connection.source, connection.target)
        start = inside[0][1].source
        path = [start]
        current = following[start]
        while current not in path:
            path.append(current)
            current = following[current]
        return " -> ".join([*path[path.index(current) :], current])

    def check_reachability(self, nodes: Sequence[Node]) -> None:
        successors: dict[str, list[str]] = {}
        for _, connection in self.edges:
            successors.setdefault(connection.source, []).append(connection.target)
        triggers = [node_id for node_id, node_type in self.types.items() if node_type.is_trigger]
        reached = set(triggers)
        queue = deque(triggers)
        while queue:
            for child in successors.get(queue.popleft(), ()):
                if child not in reached:
                    reached.add(child)
                    queue.append(child)
        unreachable = [
            (position, node)
            for position, node in enumerate(nodes)
            if node.id not in reached and self.index.get(node.id) == position and node.id in self.types
        ]
        actions = [node for node in nodes if node.id in self.types and not self.types[node.id].is_trigger]
        if actions and len(unreachable) == len(actions):
            self.issue("error", f"{self.prefix}.connections", "no node is connected to a trigger node")
            return
        for position, node in unreachable:
            self.issue(
                "warning",
                self.node_path(position),
                f"node {node.id!r} is not reachable from a trigger node; it never runs",
                node.id,
            )


def validate_workflow(spec: WorkflowDefinition, *, prefix: str = "spec") -> ValidationResult:
    """Validate a workflow's graph; ``prefix`` starts every issue's path (``spec`` for a Workflow)."""
    return _Validator(spec, prefix).run()
