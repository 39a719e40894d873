"""Pure helpers for editing a workflow graph: ids, positions, layout, merge patches and required scopes.

The API's graph routes (``tideflow.api.routers.graph``) use them inside a read-modify-replace of the
Workflow, so everything here is a deterministic function of the graph it is given and never touches a
cluster. They live in ``core`` because the operator may report the same required scopes.

* :func:`layout` arranges nodes left to right in layers: a node's layer is the length of the longest
  path reaching it from a node without inputs (the triggers), each layer is a column, and a node sits
  as close as it can to the mean height of its parents. Positions depend on the graph alone (never on
  the current positions), so laying out twice changes nothing the second time.
* :func:`next_position` places a new node to the right of the right-most one, so it overlaps none.
* :func:`required_scopes` lists what a workflow's nodes reach outside the workflow: the Secrets their
  configs reference (``secrets:read:<name>``) and the hosts HTTP nodes call (``http:request:<host>``).
  Every scope matches :data:`~tideflow.core.models.SCOPE_PATTERN`, the pattern of ``spec.requiredScopes``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tideflow.core.catalog import CATALOG, secret_references
from tideflow.core.models import DNS_SUBDOMAIN_PATTERN, Node

__all__ = [
    "COLUMN_WIDTH",
    "NODE_HEIGHT",
    "NODE_WIDTH",
    "ORIGIN",
    "ROW_HEIGHT",
    "ScopeNeed",
    "cycle_through",
    "http_host",
    "layout",
    "merge_patch",
    "new_connection_id",
    "new_node_id",
    "next_position",
    "required_scopes",
]

NODE_WIDTH: Final = 240.0
"""The widest node box the layout assumes, in canvas units."""
NODE_HEIGHT: Final = 100.0
"""The tallest node box the layout assumes, in canvas units."""
COLUMN_WIDTH: Final = 300.0
"""Horizontal distance between layers (a node box plus a gap for the connections)."""
ROW_HEIGHT: Final = 150.0
"""Smallest vertical distance between two nodes of one layer."""
ORIGIN: Final = (100.0, 100.0)
"""Where the first layer starts (and where the first node of an empty workflow goes)."""

_MAX_NODE_ID_LENGTH: Final = 63
_MAX_CONNECTION_ID_LENGTH: Final = 253


# --------------------------------------------------------------------------------------------
# Ids and positions
# --------------------------------------------------------------------------------------------


def new_node_id(type_id: str, taken: Collection[str]) -> str:
    """``<type>_<n>`` with the smallest ``n >= 1`` not taken, e.g. ``http_request_2``."""
    number = 1
    while True:
        suffix = f"_{number}"
        candidate = type_id[: _MAX_NODE_ID_LENGTH - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        number += 1


def new_connection_id(source: str, target: str, taken: Collection[str]) -> str:
    """``c-<source>-<target>``, or with ``-2``, ``-3``, ... when that is taken."""
    base = f"c-{source}-{target}"[:_MAX_CONNECTION_ID_LENGTH]
    if base not in taken:
        return base
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = base[: _MAX_CONNECTION_ID_LENGTH - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        number += 1


def next_position(positions: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """Right of the right-most node (one column further, at its height); :data:`ORIGIN` when there is none.

    Every existing node is then at least :data:`COLUMN_WIDTH` to the left, so the new one overlaps none.
    """
    placed = list(positions)
    if not placed:
        return ORIGIN
    right_most = max(placed, key=lambda xy: (xy[0], -xy[1]))
    return (right_most[0] + COLUMN_WIDTH, right_most[1])


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def _layers(order: Sequence[str], parents: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """The longest-path layer of every node; a cycle is broken at its earliest node in ``order``."""
    position = {node: index for index, node in enumerate(order)}
    missing = {node: len(set(parents.get(node, ()))) for node in order}
    children: dict[str, list[str]] = defaultdict(list)
    for node in order:
        for parent in set(parents.get(node, ())):
            children[parent].append(node)
    layer: dict[str, int] = {}
    ready = [node for node in order if missing[node] == 0]
    while len(layer) < len(order):
        if not ready:  # only cycles are left: place the earliest waiting node as if its loop were cut
            ready = [min((node for node in order if node not in layer), key=position.__getitem__)]
        ready.sort(key=position.__getitem__)
        node = ready.pop(0)
        if node in layer:
            continue
        placed = [layer[parent] for parent in parents.get(node, ()) if parent in layer]
        layer[node] = max(placed, default=-1) + 1
        for child in children[node]:
            missing[child] -= 1
            if missing[child] == 0 and child not in layer:
                ready.append(child)
    return layer


def layout(
    nodes: Sequence[str], connections: Iterable[tuple[str, str]], *, first: Collection[str] = ()
) -> dict[str, tuple[float, float]]:
    """Positions for ``nodes`` (ids, in their stored order) joined by ``connections`` (source, target).

    Layer ``k`` is the column at ``x = ORIGIN.x + k * COLUMN_WIDTH``. In the first column the nodes of
    ``first`` (the triggers) come before the other nodes without inputs; in the others, nodes are sorted
    by the mean height of their parents and each is placed at that height when it is free, else just
    below the node above it (at least :data:`ROW_HEIGHT` apart), and the column is then shifted up by
    the mean displacement so that pushes balance out. Finally everything is moved so that the top-most
    node is at ``ORIGIN.y``. Coordinates are whole numbers, so no two nodes of a column are closer than
    :data:`ROW_HEIGHT` and no two columns closer than :data:`COLUMN_WIDTH`.
    """
    order = list(dict.fromkeys(nodes))
    known = set(order)
    incoming: dict[str, list[str]] = defaultdict(list)
    for source, target in connections:
        if source in known and target in known and source != target:
            incoming[target].append(source)
    parents = {node: list(dict.fromkeys(incoming.get(node, ()))) for node in order}
    layer = _layers(order, parents)
    index = {node: number for number, node in enumerate(order)}
    columns: dict[int, list[str]] = defaultdict(list)
    for node in order:
        columns[layer[node]].append(node)
    height: dict[str, float] = {}
    for column in sorted(columns):
        members = columns[column]
        if column == 0:
            members.sort(key=lambda node: (node not in first, index[node]))
            wanted = {node: float(slot) * ROW_HEIGHT for slot, node in enumerate(members)}
        else:
            wanted = {}
            for node in members:
                above = [height[parent] for parent in parents[node] if parent in height]
                wanted[node] = float(round(sum(above) / len(above))) if above else 0.0
            members.sort(key=lambda node: (wanted[node], index[node]))
        placed: list[float] = []
        for node in members:
            y = wanted[node] if not placed else max(wanted[node], placed[-1] + ROW_HEIGHT)
            placed.append(y)
        shift = float(
            round(sum(y - wanted[node] for node, y in zip(members, placed, strict=True)) / len(members))
        )
        for node, y in zip(members, placed, strict=True):
            height[node] = y - shift
    top = min(height.values(), default=0.0)
    origin_x, origin_y = ORIGIN
    return {node: (origin_x + layer[node] * COLUMN_WIDTH, height[node] - top + origin_y) for node in order}


def cycle_through(connections: Iterable[tuple[str, str]], source: str, target: str) -> list[str] | None:
    """The path ``target -> ... -> source`` that a new connection ``source -> target`` would close, if any."""
    children: dict[str, list[str]] = defaultdict(list)
    for start, end in connections:
        children[start].append(end)
    came_from: dict[str, str | None] = {target: None}
    frontier = [target]
    while frontier:
        following: list[str] = []
        for node in frontier:
            if node == source:
                path = [node]
                while (previous := came_from[path[-1]]) is not None:
                    path.append(previous)
                return path[::-1]
            for child in children[node]:
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    return None


# --------------------------------------------------------------------------------------------
# Merge patches
# --------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge key by key, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------------------------
# Required scopes
# --------------------------------------------------------------------------------------------


@dataclass
class ScopeNeed:
    """One required scope, the nodes that need it and why."""

    scope: str
    nodes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


_TEMPLATE: Final = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_HOLE: Final = "\x00"
_URL: Final = re.compile(r"^\s*([^:/?#]*)://([^/?#]*)")


def http_host(url: str) -> str | None:
    """The host an HTTP node's ``url`` calls, lower-cased: ``*`` when a template decides the whole host,
    ``*.example.com`` when templates decide only its leading labels; ``None`` for no absolute URL."""
    text = _TEMPLATE.sub(_HOLE, url)
    match = _URL.match(text)
    if match is None:
        return "*" if text.strip().startswith(_HOLE) else None
    scheme, authority = match.groups()
    if _HOLE in scheme:
        return "*"
    host = authority.rpartition("@")[2]
    if host.startswith("["):  # an IPv6 literal
        host = host[: host.find("]") + 1] if "]" in host else host
    else:
        host = host.partition(":")[0]
    host = host.lower().rstrip(".")
    if not host:
        return None
    if _HOLE not in host:
        return _ascii_host(host)
    labels = host.split(".")
    templated = [_HOLE in label for label in labels]
    fixed = labels[templated.index(False) :] if False in templated else []
    if len(fixed) < 2 or any(_HOLE in label for label in fixed):
        return "*"
    suffix = _ascii_host(".".join(fixed))
    return "*" if suffix == "*" else f"*.{suffix}"


def _ascii_host(host: str) -> str:
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "*"
    return ascii_host if re.fullmatch(r"[!-~]{1,253}", ascii_host) else "*"


def _needs(node: Node) -> Iterator[tuple[str, str]]:
    """``(scope, reason)`` for everything one node reaches outside the workflow."""
    for ref in secret_references(node.config):
        if len(ref.name) > 253 or re.fullmatch(DNS_SUBDOMAIN_PATTERN, ref.name) is None:
            continue  # no Secret can have that name: the node fails whatever is granted
        yield f"secrets:read:{ref.name}", f"{node.id} reads key {ref.key!r} of Secret {ref.name!r}"
    node_type = CATALOG.get(node.type)
    if node_type is not None and node_type.id == "http_request":
        url = node.config.get("url")
        host = http_host(url) if isinstance(url, str) else None
        if host is not None:
            reason = (
                f"{node.id} calls {host}"
                if "*" not in host
                else f"{node.id} calls a host its url template decides ({host})"
            )
            yield f"http:request:{host}", reason


def required_scopes(nodes: Iterable[Node]) -> list[ScopeNeed]:
    """What the nodes need, one entry per scope, sorted by scope; nodes and reasons in node order."""
    needs: dict[str, ScopeNeed] = {}
    for node in nodes:
        for scope, reason in _needs(node):
            need = needs.setdefault(scope, ScopeNeed(scope))
            if node.id not in need.nodes:
                need.nodes.append(node.id)
            if reason not in need.reasons:
                need.reasons.append(reason)
    return [needs[scope] for scope in sorted(needs)]
