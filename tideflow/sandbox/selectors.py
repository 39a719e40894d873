"""Label and field selectors, parsed and matched as kube-apiserver does for list and watch requests."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tideflow.sandbox.errors import ApiError

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: ``key op values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present  # "!"


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( )`` (set-based values contain commas)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _check_key(key: str, selector: str) -> None:
    if not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise ApiError.bad_request(f'unable to parse requirement: invalid label key "{key}" in "{selector}"')


def _check_value(value: str, selector: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ApiError.bad_request(
            f'unable to parse requirement: invalid label value: "{value}" in "{selector}"'
        )


_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse the string form of a label selector (equality- and set-based); 400 on bad syntax."""
    if not text:
        return []
    requirements: list[Requirement] = []
    for clause in _split_top_level(text):
        set_match = _SET_RE.match(clause)
        if set_match:
            key = set_match["key"]
            values = frozenset(v.strip() for v in set_match["values"].split(",") if v.strip())
            _check_key(key, text)
            for value in values:
                _check_value(value, text)
            requirements.append(Requirement(key, set_match["op"], values))
            continue
        for op in ("!=", "==", "="):
            if op in clause:
                key, _, value = clause.partition(op)
                key, value = key.strip(), value.strip()
                _check_key(key, text)
                _check_value(value, text)
                requirements.append(Requirement(key, "!=" if op == "!=" else "=", frozenset({value})))
                break
        else:
            if clause.startswith("!"):
                key = clause[1:].strip()
                _check_key(key, text)
                requirements.append(Requirement(key, "!"))
            else:
                _check_key(clause, text)
                requirements.append(Requirement(clause, "exists"))
    return requirements


def selector_from_label_selector_object(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """Convert a structured ``LabelSelector`` (matchLabels, matchExpressions) into requirements."""
    if not selector:
        return []
    requirements = [
        Requirement(key, "=", frozenset({str(value)}))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        op = ops.get(expression.get("operator", ""))
        if op is None:
            raise ApiError.bad_request(f"invalid label selector operator: {expression.get('operator')!r}")
        requirements.append(Requirement(expression["key"], op, frozenset(expression.get("values") or [])))
    return requirements


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """Render a structured ``LabelSelector`` as the string form (as a Scale's ``status.selector``)."""
    parts = [f"{key}={value}" for key, value in sorted((selector or {}).get("matchLabels", {}).items())]
    for expression in (selector or {}).get("matchExpressions") or []:
        op, key = expression["operator"], expression["key"]
        values = ",".join(sorted(expression.get("values") or []))
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})"}.get(op, "")
            or (key if op == "Exists" else f"!{key}")
        )
    return ",".join(parts)


def labels_match(requirements: list[Requirement], obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(requirement.matches(labels) for requirement in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    """One clause of a field selector: a dotted path compared with ``=``/``==`` or ``!=``."""

    path: tuple[str, ...]
    value: str
    negate: bool

    def matches(self, obj: Mapping[str, Any]) -> bool:
        current: Any = obj
        for part in self.path:
            current = current.get(part) if isinstance(current, Mapping) else None
        text = (
            "" if current is None else (str(current).lower() if isinstance(current, bool) else str(current))
        )
        return (text != self.value) if self.negate else (text == self.value)


def parse_field_selector(
    text: str | None, supported: tuple[str, ...] | None = None
) -> list[FieldRequirement]:
    """Parse a field selector; with ``supported``, other fields are a 400 as on a real server."""
    if not text:
        return []
    requirements: list[FieldRequirement] = []
    for clause in _split_top_level(text):
        for op in ("!=", "==", "="):
            if op in clause:
                path, _, value = clause.partition(op)
                path = path.strip()
                if supported is not None and path not in ("metadata.name", "metadata.namespace", *supported):
                    raise ApiError.bad_request(f"field label not supported: {path}")
                parts = ("source", "component") if path == "source" else tuple(path.split("."))
                requirements.append(FieldRequirement(parts, value.strip(), op == "!="))
                break
        else:
            raise ApiError.bad_request(f'invalid selector: "{text}"; can\'t understand "{clause}"')
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)
