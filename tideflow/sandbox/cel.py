"""CEL for ``x-kubernetes-validations``: compile, type-convert and evaluate rules like kube-apiserver.

The sandbox API server evaluates CustomResourceDefinition validation rules with ``celpy`` (PyPI
``cel-python``), a pure-Python CEL interpreter. This module is the thin layer that makes celpy
behave like the cel-go environment kube-apiserver builds for CRDs:

* **Compilation** parses the rule with celpy and then checks every identifier and function
  statically, so a rule that refers to an undeclared variable or function fails when it is
  compiled (as cel-go does), not silently at evaluation time. Only ``self`` and ``oldSelf`` are
  declared variables; a rule that mentions ``oldSelf`` is a *transition rule*.
* **Values** are converted from JSON to CEL guided by the structural schema, as the apiserver's
  ``UnstructuredToVal`` does: ``integer`` -> int, ``number`` -> double (also for JSON integers),
  ``boolean`` -> bool, ``string`` -> string except ``format: date-time``/``date`` -> timestamp,
  ``format: duration`` -> duration and ``format: byte`` -> bytes; ``x-kubernetes-int-or-string`` ->
  int or string as the value is; objects with ``properties`` expose only the declared properties,
  under their CEL-escaped names (``x-y`` is ``self.x__dash__y``); objects with
  ``additionalProperties`` are maps with the raw keys; fields without a type (under
  ``x-kubernetes-preserve-unknown-fields``) are invisible; at a resource root (and for
  ``x-kubernetes-embedded-resource`` objects) ``apiVersion``, ``kind`` and ``metadata.name`` /
  ``metadata.generateName`` are visible. Lists with ``x-kubernetes-list-type`` ``set`` or ``map``
  compare equal regardless of order.
* **Semantics** follow cel-go where celpy differs: ``==``/``!=`` are heterogeneous (``1 == 1.0`` is
  true, ``1 == 'a'`` is false rather than an error), ``<``/``>`` compare int and double, indexing a
  string or a list out of range is an error, and ``matches`` uses RE2 (the ``google-re2`` package
  celpy depends on).
* **Library**: the standard CEL functions and macros celpy provides (``size``, ``has``, ``all``,
  ``exists``, ``exists_one``, ``map`` (two-argument form), ``filter``, ``matches``,
  ``contains``, ``startsWith``, ``endsWith``, conversions, timestamp getters) plus the Kubernetes
  additions that are cheap to provide: ``lowerAscii``, ``upperAscii``, ``split``, ``trim``,
  ``replace``, ``indexOf``, ``lastIndexOf``, ``substring``, ``charAt``, ``join``, ``isSorted``,
  ``sum``, ``min``, ``max``, ``find``, ``findAll`` and, for ``optionalOldSelf`` rules,
  ``hasValue``/``value``/``orValue`` on ``oldSelf``.

Not emulated: static type checking (``self.noSuchField`` is a runtime "no such key" error here
instead of a compile error), the cost budget, optional types beyond ``oldSelf``, the URL, IP,
CIDR, quantity, semver, format and authorizer libraries, and ``+`` on set/map lists (merge
semantics); celpy's three-argument ``map`` is refused at compile time.
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import celpy
import lark
import re2  # type: ignore[import-untyped]  # google-re2, a dependency of cel-python
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELFunction

__all__ = [
    "CELEvaluationError",
    "CompiledExpression",
    "OptionalValue",
    "as_string",
    "compile_expression",
    "escape_property_name",
    "evaluate",
    "is_bool",
    "is_true",
    "to_cel",
]

# ---------------------------------------------------------------------------------------------
# Property name escaping (k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model/escaping.go)

_CEL_RESERVED = frozenset(
    {
        "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
        "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
        "void", "while",
    }
)  # fmt: skip
_EXPAND = re.compile(r"(__|[-./]|[^a-zA-Z0-9\-./_])")
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}


def escape_property_name(name: str) -> str | None:
    """The CEL identifier under which a property is visible, or None when it is not accessible."""
    if not name or name[0].isdigit():
        return None
    if name in _CEL_RESERVED:
        return f"__{name}__"
    unsupported = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unsupported
        token = match.group(0)
        if token in _ESCAPES:
            return _ESCAPES[token]
        unsupported = True
        return ""

    escaped = _EXPAND.sub(replace, name)
    return None if unsupported else escaped


# ---------------------------------------------------------------------------------------------
# Values


class OptionalValue:
    """``oldSelf`` for a rule with ``optionalOldSelf: true``: CEL ``optional`` with or without a value."""

    __slots__ = ("_present", "_value")

    def __init__(self, value: Any = None, *, present: bool) -> None:
        self._present = present
        self._value = value

    @property
    def present(self) -> bool:
        return self._present

    @property
    def inner(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return f"optional.of({self._value!r})" if self._present else "optional.none()"


class _UnorderedList(celtypes.ListType):
    """A list with ``x-kubernetes-list-type`` set or map: equality ignores element order."""


def _generic(value: Any) -> Any:
    """JSON value to CEL without a schema (dyn)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value) if -(2**63) <= value < 2**63 else celtypes.DoubleType(float(value))
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, list | tuple):
        return celtypes.ListType([_generic(item) for item in value])
    if isinstance(value, Mapping):
        return celtypes.MapType({celtypes.StringType(str(k)): _generic(v) for k, v in value.items()})
    return celtypes.StringType(str(value))


def _string(value: str, fmt: Any) -> Any:
    try:
        if fmt == "date-time":
            return celtypes.TimestampType(value)
        if fmt == "date":
            return celtypes.TimestampType(f"{value}T00:00:00Z")
        if fmt == "duration":
            return celtypes.DurationType(value)
        if fmt == "byte":
            return celtypes.BytesType(base64.b64decode(value, validate=True))
    except (ValueError, TypeError, OverflowError, binascii.Error):
        return celtypes.StringType(value)
    return celtypes.StringType(value)


def _schema_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    return kind if isinstance(kind, str) else ""


def _typed(schema: Mapping[str, Any]) -> bool:
    return bool(_schema_type(schema)) or schema.get("x-kubernetes-int-or-string") is True


def to_cel(value: Any, schema: Mapping[str, Any] | None, *, resource_root: bool = False) -> Any:
    """Convert a JSON value to the CEL value a rule sees as ``self`` for a node with ``schema``."""
    if value is None:
        return None
    if not isinstance(schema, Mapping):
        return _generic(value)
    kind = _schema_type(schema)
    if schema.get("x-kubernetes-int-or-string") is True:
        return _generic(value)
    if kind == "string" and isinstance(value, str):
        return _string(value, schema.get("format"))
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            return celtypes.IntType(int(value))
        return _generic(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    if kind == "array" and isinstance(value, list):
        items = schema.get("items")
        item_schema = items if isinstance(items, Mapping) else None
        embedded = bool(item_schema and item_schema.get("x-kubernetes-embedded-resource") is True)
        converted = [to_cel(item, item_schema, resource_root=embedded) for item in value]
        if schema.get("x-kubernetes-list-type") in ("set", "map"):
            return _UnorderedList(converted)
        return celtypes.ListType(converted)
    if kind == "object" and isinstance(value, Mapping):
        return _object(value, schema, resource_root or schema.get("x-kubernetes-embedded-resource") is True)
    return _generic(value)


def _object(value: Mapping[str, Any], schema: Mapping[str, Any], resource_root: bool) -> Any:
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    out: dict[Any, Any] = {}
    if isinstance(additional, Mapping) and not properties:
        embedded = additional.get("x-kubernetes-embedded-resource") is True
        for key, item in value.items():
            out[celtypes.StringType(key)] = to_cel(item, additional, resource_root=embedded)
        return celtypes.MapType(out)
    declared: dict[str, Any] = dict(properties) if isinstance(properties, Mapping) else {}
    if resource_root:
        declared["apiVersion"] = {"type": "string"}
        declared["kind"] = {"type": "string"}
        declared["metadata"] = {
            "type": "object",
            "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}},
        }
    for key, item in value.items():
        sub = declared.get(key)
        if not isinstance(sub, Mapping) or not _typed(sub):
            continue  # undeclared, or without schema information: invisible to CEL
        escaped = escape_property_name(key)
        if escaped is None:
            continue
        embedded = sub.get("x-kubernetes-embedded-resource") is True
        out[celtypes.StringType(escaped)] = to_cel(item, sub, resource_root=embedded)
    return celtypes.MapType(out)


# ---------------------------------------------------------------------------------------------
# Operators with cel-go semantics


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain(number: Any) -> int | float:
    """A builtin number: celpy's IntType/DoubleType refuse to compare with each other."""
    return float(number) if isinstance(number, float) else int(number)


def _equal(a: Any, b: Any) -> bool:
    """CEL heterogeneous equality (cel-go): different types are unequal, numbers compare by value."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, OptionalValue) or isinstance(b, OptionalValue):
        if not (isinstance(a, OptionalValue) and isinstance(b, OptionalValue)):
            return False
        if a.present != b.present:
            return False
        return not a.present or _equal(a.inner, b.inner)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and bool(a) == bool(b)
    if _is_number(a) and _is_number(b):
        return _plain(a) == _plain(b)
    if isinstance(a, str) and isinstance(b, str):
        return str(a) == str(b)
    if isinstance(a, bytes) and isinstance(b, bytes):
        return bytes(a) == bytes(b)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        if isinstance(a, _UnorderedList) or isinstance(b, _UnorderedList):
            remaining = list(b)
            for item in a:
                for index, other in enumerate(remaining):
                    if _equal(item, other):
                        del remaining[index]
                        break
                else:
                    return False
            return True
        return all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if len(a) != len(b):
            return False
        for key, item in a.items():
            match = [other for other_key, other in b.items() if _equal(key, other_key)]
            if not match or not _equal(item, match[0]):
                return False
        return True
    if type(a) is type(b) or any(isinstance(x, type | celtypes.TypeType) for x in (a, b)):
        try:
            return bool(a == b)
        except TypeError:
            return False
    return False


def _errors_first(*values: Any) -> Any:
    for value in values:
        if isinstance(value, CELEvalError):
            return value
    return None


def _eq(a: Any, b: Any) -> Any:
    return _errors_first(a, b) or celtypes.BoolType(_equal(a, b))


def _ne(a: Any, b: Any) -> Any:
    return _errors_first(a, b) or celtypes.BoolType(not _equal(a, b))


def _ordered(a: Any, b: Any) -> tuple[Any, Any]:
    if _is_number(a) and _is_number(b):
        return _plain(a), _plain(b)
    for kinds in ((bool,), (str,), (bytes,), (celtypes.TimestampType,), (celtypes.DurationType,)):
        if isinstance(a, kinds) and isinstance(b, kinds):
            return a, b
    raise TypeError(f"no such overload: {type(a).__name__} < {type(b).__name__}")


def _comparison(test: Callable[[Any, Any], bool]) -> CELFunction:
    def compare(a: Any, b: Any) -> Any:
        error = _errors_first(a, b)
        if error is not None:
            return error
        left, right = _ordered(a, b)
        return celtypes.BoolType(test(left, right))

    return compare


def _in(item: Any, container: Any) -> Any:
    error = _errors_first(item, container)
    if error is not None:
        return error
    if isinstance(container, Mapping | list):
        return celtypes.BoolType(any(_equal(item, member) for member in container))
    raise TypeError("no such overload: in")


def _index(container: Any, index: Any) -> Any:
    error = _errors_first(container, index)
    if error is not None:
        return error
    if isinstance(container, list):
        if isinstance(index, bool) or not _is_number(index):
            raise TypeError("no such overload: list index")
        if isinstance(index, float) and not index.is_integer():
            raise TypeError("no such overload: list index")
        position = int(index)
        if position < 0 or position >= len(container):
            return CELEvalError(f"index out of bounds: {position}", IndexError, (position,))
        return container[position]
    if isinstance(container, Mapping):
        for key, value in container.items():
            if _equal(key, index):
                return value
        return CELEvalError(f"no such key: {index}", KeyError, (index,))
    raise TypeError("no such overload: index")


# ---------------------------------------------------------------------------------------------
# Kubernetes library functions (the cheap ones)


def _need(value: Any, *kinds: type) -> None:
    if not isinstance(value, kinds):
        raise TypeError("no such overload")


def _ascii(text: Any, lower: bool) -> Any:
    _need(text, str)
    table = str.maketrans(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if lower else "abcdefghijklmnopqrstuvwxyz",
        "abcdefghijklmnopqrstuvwxyz" if lower else "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    )
    return celtypes.StringType(str(text).translate(table))


def _lower_ascii(text: Any) -> Any:
    return _ascii(text, lower=True)


def _upper_ascii(text: Any) -> Any:
    return _ascii(text, lower=False)


def _split(text: Any, separator: Any, limit: Any = None) -> Any:
    _need(text, str)
    _need(separator, str)
    count = -1 if limit is None else int(limit)
    if count == 0:
        return celtypes.ListType([])
    if separator == "":
        parts = list(str(text))
        if count > 0 and len(parts) > count:
            parts = [*parts[: count - 1], "".join(parts[count - 1 :])]
    else:
        parts = str(text).split(str(separator), count - 1 if count > 0 else -1)
    return celtypes.ListType([celtypes.StringType(part) for part in parts])


def _trim(text: Any) -> Any:
    _need(text, str)
    return celtypes.StringType(str(text).strip())


def _replace(text: Any, old: Any, new: Any, limit: Any = None) -> Any:
    _need(text, str)
    _need(old, str)
    _need(new, str)
    count = -1 if limit is None else int(limit)
    return celtypes.StringType(str(text).replace(str(old), str(new), count))


def _index_of(container: Any, item: Any, offset: Any = None) -> Any:
    if isinstance(container, str):
        _need(item, str)
        start = 0 if offset is None else int(offset)
        if start < 0 or start > len(container):
            return CELEvalError(f"index out of range: {start}", IndexError, (start,))
        return celtypes.IntType(str(container).find(str(item), start))
    if isinstance(container, list):
        for position, member in enumerate(container):
            if _equal(member, item):
                return celtypes.IntType(position)
        return celtypes.IntType(-1)
    raise TypeError("no such overload")


def _last_index_of(container: Any, item: Any, offset: Any = None) -> Any:
    if isinstance(container, str):
        _need(item, str)
        end = len(container) if offset is None else int(offset)
        if end < 0 or end > len(container):
            return CELEvalError(f"index out of range: {end}", IndexError, (end,))
        return celtypes.IntType(str(container).rfind(str(item), 0, end + len(item)))
    if isinstance(container, list):
        for position in range(len(container) - 1, -1, -1):
            if _equal(container[position], item):
                return celtypes.IntType(position)
        return celtypes.IntType(-1)
    raise TypeError("no such overload")


def _substring(text: Any, start: Any, end: Any = None) -> Any:
    _need(text, str)
    begin = int(start)
    finish = len(text) if end is None else int(end)
    if begin < 0 or begin > len(text) or finish < begin or finish > len(text):
        return CELEvalError(f"index out of range: {begin}", IndexError, (begin,))
    return celtypes.StringType(str(text)[begin:finish])


def _char_at(text: Any, position: Any) -> Any:
    _need(text, str)
    index = int(position)
    if index < 0 or index > len(text):
        return CELEvalError(f"index out of range: {index}", IndexError, (index,))
    return celtypes.StringType(str(text)[index : index + 1])


def _join(items: Any, separator: Any = "") -> Any:
    _need(items, list)
    _need(separator, str)
    for item in items:
        _need(item, str)
    return celtypes.StringType(str(separator).join(str(item) for item in items))


def _is_sorted(items: Any) -> Any:
    _need(items, list)
    for previous, current in itertools.pairwise(items):
        left, right = _ordered(previous, current)
        if right < left:
            return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _sum(items: Any) -> Any:
    _need(items, list)
    if not items:
        return celtypes.IntType(0)
    total = items[0]
    for item in items[1:]:
        _ordered(total, item)
        total = total + item
    return total


def _max(items: Any) -> Any:
    _need(items, list)
    if not items:
        return CELEvalError("max(list) called on an empty list", ValueError, ())
    best = items[0]
    for item in items[1:]:
        _ordered(best, item)
        if item > best:
            best = item
    return best


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options=options)


def _compiled_regex(pattern: Any) -> Any:
    _need(pattern, str)
    try:
        return _regex(str(pattern))
    except re2.error as error:
        detail = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        return CELEvalError(f"invalid regular expression: {detail}", ValueError, (pattern,))


def _matches(text: Any, pattern: Any) -> Any:
    _need(text, str)
    regex = _compiled_regex(pattern)
    if isinstance(regex, CELEvalError):
        return regex
    return celtypes.BoolType(regex.search(str(text)) is not None)


def _find(text: Any, pattern: Any) -> Any:
    _need(text, str)
    regex = _compiled_regex(pattern)
    if isinstance(regex, CELEvalError):
        return regex
    found = regex.search(str(text))
    return celtypes.StringType(found.group(0) if found else "")


def _find_all(text: Any, pattern: Any, limit: Any = None) -> Any:
    _need(text, str)
    regex = _compiled_regex(pattern)
    if isinstance(regex, CELEvalError):
        return regex
    found = [celtypes.StringType(match.group(0)) for match in regex.finditer(str(text))]
    if limit is not None and int(limit) >= 0:
        found = found[: int(limit)]
    return celtypes.ListType(found)


def _has_value(optional: Any) -> Any:
    _need(optional, OptionalValue)
    return celtypes.BoolType(optional.present)


def _value(optional: Any) -> Any:
    _need(optional, OptionalValue)
    if not optional.present:
        return CELEvalError("optional.none() dereference", ValueError, ())
    return optional.inner


def _or_value(optional: Any, default: Any) -> Any:
    _need(optional, OptionalValue)
    return optional.inner if optional.present else default


_FUNCTIONS: dict[str, CELFunction] = {
    "_==_": _eq,
    "_!=_": _ne,
    "_<_": _comparison(lambda a, b: a < b),
    "_<=_": _comparison(lambda a, b: a <= b),
    "_>_": _comparison(lambda a, b: a > b),
    "_>=_": _comparison(lambda a, b: a >= b),
    "_in_": _in,
    "_[_]": _index,
    "matches": _matches,
    "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii,
    "split": _split,
    "trim": _trim,
    "replace": _replace,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "substring": _substring,
    "charAt": _char_at,
    "join": _join,
    "isSorted": _is_sorted,
    "sum": _sum,
    "max": _max,
    "find": _find,
    "findAll": _find_all,
    "hasValue": _has_value,
    "value": _value,
    "orValue": _or_value,
}

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_GLOBAL_FUNCTIONS = frozenset(
    {
        "size",
        "int",
        "uint",
        "double",
        "string",
        "bool",
        "bytes",
        "duration",
        "timestamp",
        "dyn",
        "type",
        "matches",
    }
)
_METHODS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches", "min",
        "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth",
        "getHours", "getMilliseconds", "getMinutes", "getSeconds",
        *(name for name in _FUNCTIONS if not name.startswith("_")),
    }
)  # fmt: skip
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
_VARIABLES = frozenset({"self", "oldSelf"})


# ---------------------------------------------------------------------------------------------
# Compilation


@dataclass
class CompiledExpression:
    """A compiled CEL expression, or the compile error that kube-apiserver would report for it."""

    source: str
    error: str | None = None
    uses_old_self: bool = False
    ast: Any = None
    _runner: Any = field(default=None, repr=False)


class CELEvaluationError(Exception):
    """A CEL runtime error, worded like cel-go's (``no such key: x``, ``no such overload``, ...)."""

    def __init__(self, message: str, *, no_such_overload: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.no_such_overload = no_such_overload


class _StaticError(Exception):
    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line or 1
        self.column = column or 1


# celpy evaluates by recursion (dozens of Python frames per nesting level) and its Environment()
# raises the interpreter-wide recursion limit to 2500 as a side effect, whenever it is first
# created. Do it once, explicitly, at import (never lowering a higher limit), so the side effect
# is predictable; deeper expressions fail with a CELEvaluationError instead of crashing.
_RECURSION_LIMIT = 2500
if sys.getrecursionlimit() < _RECURSION_LIMIT:
    sys.setrecursionlimit(_RECURSION_LIMIT)


@functools.lru_cache(maxsize=1)
def _environment() -> celpy.Environment:
    limit = sys.getrecursionlimit()
    try:
        return celpy.Environment()
    finally:
        sys.setrecursionlimit(max(limit, _RECURSION_LIMIT))


def _token_position(node: Any) -> tuple[int | None, int | None]:
    if isinstance(node, lark.Token):
        return node.line, node.column
    if isinstance(node, lark.Tree):
        for child in node.children:
            line, column = _token_position(child)
            if line is not None:
                return line, column
    return None, None


def _first_token(tree: lark.Tree[Any]) -> lark.Token | None:
    for child in tree.children:
        if isinstance(child, lark.Token):
            return child
    return None


def _plain_identifier(expr: Any) -> str | None:
    """The identifier when ``expr`` is nothing but a bare identifier (a macro's loop variable)."""
    node = expr
    while isinstance(node, lark.Tree):
        if node.data == "ident":
            token = _first_token(node)
            return str(token) if token is not None else None
        trees = [child for child in node.children if isinstance(child, lark.Tree)]
        tokens = [child for child in node.children if isinstance(child, lark.Token)]
        if len(trees) != 1 or tokens:
            return None
        node = trees[0]
    return None


class _Checker:
    """Static checks celpy does not make: undeclared identifiers and functions, unsupported syntax."""

    def __init__(self) -> None:
        self.uses_old_self = False

    def check(self, node: Any, scope: frozenset[str]) -> None:
        if not isinstance(node, lark.Tree):
            return
        kind = node.data
        if kind == "ident":
            token = _first_token(node)
            name = str(token) if token is not None else ""
            if name == "oldSelf":
                self.uses_old_self = True
            if name not in scope and name not in _TYPE_NAMES:
                line, column = _token_position(node)
                raise _StaticError(f"undeclared reference to '{name}' (in container '')", line, column)
            return
        if kind == "ident_arg":
            token = _first_token(node)
            name = str(token) if token is not None else ""
            arguments = [child for child in node.children if isinstance(child, lark.Tree)]
            if name == "has":
                self._check_has(node, arguments, scope)
                return
            if name not in _GLOBAL_FUNCTIONS and name not in _FUNCTIONS:
                raise _StaticError(
                    f"undeclared reference to '{name}' (in container '')", *_token_position(node)
                )
            for argument in arguments:
                self.check(argument, scope)
            return
        if kind == "member_dot_arg":
            self._check_method(node, scope)
            return
        if kind in ("dot_ident", "dot_ident_arg", "member_object"):
            raise _StaticError(
                "unsupported syntax (qualified names and message construction are not available)",
                *_token_position(node),
            )
        for child in node.children:
            self.check(child, scope)

    def _check_has(
        self, node: lark.Tree[Any], arguments: list[lark.Tree[Any]], scope: frozenset[str]
    ) -> None:
        exprs = arguments[0].children if arguments and arguments[0].data == "exprlist" else []
        target: Any = exprs[0] if len(exprs) == 1 else None
        while isinstance(target, lark.Tree) and target.data != "member_dot":
            trees = [child for child in target.children if isinstance(child, lark.Tree)]
            if len(trees) != 1 or target.data in ("member_dot_arg", "member_index", "ident_arg"):
                target = None
                break
            target = trees[0]
        if target is None:
            raise _StaticError("invalid argument to has() macro", *_token_position(node))
        self.check(target, scope)

    def _check_method(self, node: lark.Tree[Any], scope: frozenset[str]) -> None:
        member = node.children[0]
        name_token = node.children[1]
        name = str(name_token)
        exprlist = node.children[2] if len(node.children) > 2 else None
        arguments = list(exprlist.children) if isinstance(exprlist, lark.Tree) else []
        self.check(member, scope)
        if name in _MACROS:
            expected = (2,)
            if len(arguments) not in expected:
                if name == "map" and len(arguments) == 3:
                    raise _StaticError(
                        "the three-argument form of map() is not supported by the sandbox CEL evaluator",
                        *_token_position(node),
                    )
                raise _StaticError(f"invalid argument count to {name}() macro", *_token_position(node))
            variable = _plain_identifier(arguments[0])
            if variable is None:
                raise _StaticError(f"argument is not an identifier in {name}() macro", *_token_position(node))
            for argument in arguments[1:]:
                self.check(argument, scope | {variable})
            return
        if name not in _METHODS:
            line = getattr(name_token, "line", None)
            column = getattr(name_token, "column", None)
            raise _StaticError(f"undeclared reference to '{name}' (in container '')", line, column)
        for argument in arguments:
            self.check(argument, scope)


@functools.lru_cache(maxsize=1024)
def compile_expression(source: str) -> CompiledExpression:
    """Compile a rule (or message expression); never raises, a failure is in ``.error``.

    ``.error`` is worded like the apiserver's compile error:
    ``compilation failed: ERROR: <input>:1:8: Syntax error: ...``. cel-go adds the source line and a
    caret under it; the sandbox keeps the message on one line.
    """
    try:
        ast = _environment().compile(source)
    except CELParseError as error:
        first = str(error.args[0]).strip().splitlines()[0] if error.args else "invalid expression"
        line = getattr(error, "line", None) or 1
        column = getattr(error, "column", None) or 1
        return CompiledExpression(
            source, error=f"compilation failed: ERROR: <input>:{line}:{column}: Syntax error: near '{first}'"
        )
    except Exception as error:  # lark raises assorted exceptions for odd input
        return CompiledExpression(
            source, error=f"compilation failed: ERROR: <input>:1:1: Syntax error: {error}"
        )
    checker = _Checker()
    try:
        checker.check(ast, _VARIABLES)
    except _StaticError as error:
        return CompiledExpression(
            source, error=f"compilation failed: ERROR: <input>:{error.line}:{error.column}: {error.message}"
        )
    except RecursionError:
        return CompiledExpression(source, error="compilation failed: expression nesting is too deep")
    return CompiledExpression(source, uses_old_self=checker.uses_old_self, ast=ast)


# ---------------------------------------------------------------------------------------------
# Evaluation


def _describe(error: CELEvalError) -> CELEvaluationError:
    args = error.args
    text = str(args[0]) if args else "evaluation error"
    cause = args[1] if len(args) > 1 else None
    details = args[2] if len(args) > 2 else ()
    text = text.split(" (in activation", 1)[0]
    if text.startswith("no such member in mapping: "):
        key = text.removeprefix("no such member in mapping: ").strip("'\"")
        return CELEvaluationError(f"no such key: {key}")
    if cause is KeyError and text == "no such key" and details:
        return CELEvaluationError(f"no such key: {details[0]}")
    if text.startswith(("no such overload", "found no matching overload")) or cause is TypeError:
        return CELEvaluationError("no such overload", no_such_overload=True)
    if cause is ZeroDivisionError:
        return CELEvaluationError("division by zero")
    if text == "return error for overflow":
        return CELEvaluationError("integer overflow")
    if cause is IndexError and text == "invalid_argument":
        return CELEvaluationError("index out of bounds")
    return CELEvaluationError(text)


def evaluate(compiled: CompiledExpression, activation: Mapping[str, Any]) -> Any:
    """Evaluate a compiled expression; raises :class:`CELEvaluationError` for any failure."""
    if compiled.error is not None or compiled.ast is None:
        raise CELEvaluationError(compiled.error or "expression did not compile")
    if compiled._runner is None:
        compiled._runner = _environment().program(compiled.ast, functions=_FUNCTIONS)
    try:
        result = compiled._runner.evaluate(dict(activation))
    except CELEvalError as error:
        raise _describe(error) from None
    except RecursionError:
        raise CELEvaluationError("expression nesting is too deep") from None
    except Exception as error:  # celpy lets some Python exceptions escape; never let them out
        raise CELEvaluationError(f"internal evaluation error: {type(error).__name__}: {error}") from None
    if isinstance(result, CELEvalError):
        raise _describe(result)
    return result


def is_true(value: Any) -> bool:
    """Whether a rule result is the CEL ``true`` (anything else, including non-bools, fails the rule)."""
    return isinstance(value, bool | celtypes.BoolType) and bool(value)


def is_bool(value: Any) -> bool:
    """Whether a result is a CEL bool."""
    return isinstance(value, bool | celtypes.BoolType)


def as_string(value: Any) -> str | None:
    """The Python string for a CEL string result, None for any other type.

    celpy returns plain ``str`` (not ``StringType``) for concatenations, so both count.
    """
    return str(value) if isinstance(value, str) else None
