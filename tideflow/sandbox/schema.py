"""Structural-schema machinery of the sandbox API server: prune, default and validate custom resources.

The sandbox API server calls this pure module to process a custom resource body the way
kube-apiserver's apiextensions-apiserver does (target: Kubernetes 1.33/1.34 with its default
feature gates), given a version's ``schema.openAPIV3Schema``:

* :func:`prune` drops fields the schema does not know (``x-kubernetes-preserve-unknown-fields``
  keeps them, ``x-kubernetes-embedded-resource`` and the resource root keep ``apiVersion``,
  ``kind`` and ``metadata`` as they are).
* :func:`apply_defaults` first drops ``null`` values of non-nullable fields without a default (the
  apiserver does this right after pruning), then applies ``default`` values: a default is used when
  the field is absent (or null and not nullable), defaults inside objects only apply when the
  object exists (defaulting never creates a parent), and defaults are themselves defaulted.
* :func:`validate` answers what kube-apiserver answers, as a list of :class:`FieldError` (the
  ``StatusCause`` of a 422 ``Invalid``), in the apiserver's order: ``metadata.name`` presence, then
  the OpenAPI value validations (kube-openapi), then ``x-kubernetes-list-type`` set/map uniqueness,
  then the ``x-kubernetes-validations`` CEL rules. Within each phase errors follow document order
  (the apiserver iterates Go maps, so its order between sibling fields varies; ours is stable).
  As in the apiserver, CEL rules are not evaluated while a "blocking" error exists (wrong type,
  missing required field, unsupported enum value, too long, too many); a single
  ``some validation rules were not checked`` cause is reported instead. On update (``old`` given)
  validation ratchets like the ``CRDValidationRatcheting`` feature (GA in 1.33): schema and CEL
  errors on values that are unchanged from ``old`` are dropped (the apiserver turns them into
  warnings), and transition rules (``oldSelf``) run only where an old value correlates.
* :func:`check_structural` lists what makes the apiserver refuse the schema of a CRD: structural
  schema violations, the common OpenAPI restrictions of CRDs and CEL rules that do not compile.

Messages reproduce the apiserver's wording, including Go's value formatting (``%q`` strings,
``%v`` numbers, JSON for compound values) and its quirks, e.g. a type error reads
``Invalid value: "string": spec.replicas in body must be of type integer: "string"``.

``pattern`` uses RE2 through the ``google-re2`` package (a dependency of ``cel-python``), so
patterns behave as in Go's ``regexp``: no backreferences or lookaround, linear time, ``$`` only
at the end of the text.

Not emulated (see docs/testing.md): CEL static type checking and cost budgets, the cel-go error
snippets (carets), embedded-resource ``metadata`` validation, unknown fields inside ``metadata``,
the exact alternative whose errors are reported when ``anyOf``/``oneOf`` fail (kube-openapi picks
the "best" by match count; we pick the one with fewest errors), ratcheting of list-type errors,
and the validation of ``default``/``enum``/``example`` values in :func:`check_structural`.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import re2  # type: ignore[import-untyped]  # google-re2, a dependency of cel-python

from tideflow.sandbox import cel

__all__ = ["FieldError", "apply_defaults", "check_structural", "prune", "validate"]

JSON = Any


@dataclass(frozen=True)
class FieldError:
    """One ``StatusCause`` of an ``Invalid`` status, as kube-apiserver reports it."""

    #: Kubernetes field path: "spec.lifecycle.idleTimeoutMinutes", "spec.nodes[0].id", "metadata.name"
    #: ("<nil>" for causes about the whole object, as the apiserver renders its nil field path).
    path: str
    #: The StatusCause reason: "FieldValueRequired", "FieldValueInvalid", "FieldValueTypeInvalid", ...
    type: str
    #: The StatusCause message, e.g. 'Invalid value: 3: spec.x in body should be greater than ...'.
    message: str


_MISSING: Any = object()
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_BLOCKING = frozenset(
    {
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
    }
)
_NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)

# =============================================================================================
# Go formatting: how apimachinery's field.Error renders values


def _is_int(value: Any) -> TypeGuard[int]:
    """A JSON integer that Go decodes as int64 (larger ones become float64)."""
    return isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _digits(value: float) -> tuple[str, str, int]:
    """Sign, shortest round-trip digits and decimal point position of a finite float."""
    sign = "-" if str(value).startswith("-") else ""
    if value == 0:
        return sign, "0", 1
    parsed = decimal.Decimal(repr(abs(value)))
    _, digit_tuple, exponent = parsed.as_tuple()
    digits = "".join(str(d) for d in digit_tuple).rstrip("0") or "0"
    stripped = len("".join(str(d) for d in digit_tuple)) - len(digits)
    assert isinstance(exponent, int)
    point = len(digits) + exponent + stripped
    return sign, digits, point


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _exponent(digits: str, point: int, *, min_exp_digits: int) -> str:
    exp = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):0{min_exp_digits}d}"


def _go_float(value: float) -> str:
    """Go's ``%v`` for a float64 (``strconv.FormatFloat(f, 'g', -1, 64)``)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, point = _digits(value)
    exp = point - 1
    if exp < -4 or exp >= 6:  # shortest precision: Go switches to %e at exponent 6
        return sign + _exponent(digits, point, min_exp_digits=2)
    return sign + _fixed(digits, point)


def _go_number(value: Any) -> str:
    if _is_int(value):
        return str(value)
    return _go_float(float(value))


def _go_json_float(value: float) -> str:
    """``encoding/json``'s rendering of a float64 (non-finite values, not JSON, fall back to ``%v``)."""
    if value != value or value in (float("inf"), float("-inf")):
        return _go_float(value)
    sign, digits, point = _digits(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = _exponent(digits, point, min_exp_digits=1)
        return sign + text
    return sign + _fixed(digits, point)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _go_json_string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[char])
        elif ord(char) < 0x20 or char in "<>&\u2028\u2029":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _go_json(value: Any) -> str:
    """``encoding/json.Marshal`` of a decoded JSON value (sorted keys, HTML-safe escaping)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_int(value):
        return str(value)
    if _is_number(value):
        return _go_json_float(float(value))
    if isinstance(value, str):
        return _go_json_string(value)
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{_go_json_string(k)}:{_go_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_go_json(item) for item in value) + "]"
    return _go_json_string(str(value))


_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (``%q``)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == " " or char.isprintable():
            out.append(char)
        elif char in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _value_text(value: Any) -> str:
    """How ``field.Error.ErrorBody`` prints a bad value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return _go_number(value)
    if isinstance(value, str):
        return _go_quote(value)
    return _go_json(value)


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {_value_text(value)}: {detail}")


def _type_invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "FieldValueTypeInvalid", f"Invalid value: {_value_text(value)}: {detail}")


def _required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def _forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "FieldValueForbidden", f"Forbidden: {detail}")


def _duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, "FieldValueDuplicate", f"Duplicate value: {_value_text(value)}")


def _too_many(path: str, actual: int, maximum: int) -> FieldError:
    noun = "item" if maximum == 1 else "items"
    return FieldError(path, "FieldValueTooMany", f"Too many: {actual}: must have at most {maximum} {noun}")


def _not_supported(path: str, value: Any, allowed: Sequence[str]) -> FieldError:
    detail = ": supported values: " + ", ".join(_go_quote(v) for v in allowed) if allowed else ""
    return FieldError(path, "FieldValueNotSupported", f"Unsupported value: {_value_text(value)}{detail}")


# field.Path rendering ("" is the nil root, rendered "<nil>" as apimachinery does)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


def _index(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _rendered(path: str) -> str:
    return path if path else "<nil>"


# =============================================================================================
# JSON helpers


def _json_equal(a: Any, b: Any) -> bool:
    """Go ``reflect.DeepEqual`` on decoded JSON: int64 and float64 differ, bools are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_int(a) or _is_int(b):
        return _is_int(a) and _is_int(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float | int) and isinstance(b, float | int) and float(a) == float(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _schema_at(schema: Any, name: str) -> Any:
    value = schema.get(name) if isinstance(schema, Mapping) else None
    return value


def _properties(schema: Any) -> Mapping[str, Any]:
    properties = _schema_at(schema, "properties")
    return properties if isinstance(properties, Mapping) else {}


def _additional(schema: Any) -> Mapping[str, Any] | None:
    """The additionalProperties schema; ``true`` counts as an empty schema, ``false`` as absent."""
    additional = _schema_at(schema, "additionalProperties")
    if isinstance(additional, Mapping):
        return dict(additional)
    if additional is True:
        return {}
    return None


def _items(schema: Any) -> Mapping[str, Any] | None:
    items = _schema_at(schema, "items")
    return items if isinstance(items, Mapping) else None


def _preserves(schema: Any) -> bool:
    return _schema_at(schema, "x-kubernetes-preserve-unknown-fields") is True


def _embedded(schema: Any) -> bool:
    return _schema_at(schema, "x-kubernetes-embedded-resource") is True


def _nullable(schema: Any) -> bool:
    return _schema_at(schema, "nullable") is True


def _has_default(schema: Any) -> bool:
    return isinstance(schema, Mapping) and "default" in schema and schema["default"] is not None


def _schema_for_field(schema: Any, name: str) -> Mapping[str, Any] | None:
    sub = _properties(schema).get(name)
    if isinstance(sub, Mapping):
        return sub
    return _additional(schema)


# =============================================================================================
# Pruning


_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


def prune(schema: dict[str, Any], obj: Any) -> Any:
    """Return a copy of ``obj`` without the fields ``schema`` does not specify.

    Follows apiextensions' pruning algorithm: objects keep their declared ``properties``, every
    key under ``additionalProperties``, and everything under ``x-kubernetes-preserve-unknown-fields``
    (whose declared properties are still pruned recursively); ``apiVersion``, ``kind`` and
    ``metadata`` are kept untouched at the root and in ``x-kubernetes-embedded-resource`` objects.
    An object under a schema that says nothing about it (e.g. array items without ``items``) is
    emptied; scalars are never touched.
    """
    result = copy.deepcopy(obj)
    root = dict(schema) if isinstance(schema, Mapping) else {}
    root["x-kubernetes-embedded-resource"] = True
    _prune(result, root)
    return result


def _prune(value: Any, schema: Mapping[str, Any] | None) -> None:
    if schema is not None and _preserves(schema):
        _skip_prune(value, schema)
        return
    if isinstance(value, dict):
        if schema is None:
            value.clear()
            return
        properties = _properties(schema)
        additional = _additional(schema)
        for key in list(value):
            if _embedded(schema) and key in _META_FIELDS:
                continue
            if key in properties and isinstance(properties[key], Mapping):
                _prune(value[key], properties[key])
            elif additional is not None:
                _prune(value[key], additional)
            else:
                del value[key]
    elif isinstance(value, list):
        items = _items(schema) if schema is not None else None
        for item in value:
            _prune(item, items)


def _skip_prune(value: Any, schema: Mapping[str, Any]) -> None:
    if isinstance(value, dict):
        properties = _properties(schema)
        additional = _additional(schema)
        for key, item in value.items():
            if _embedded(schema) and key in _META_FIELDS:
                continue
            if key in properties and isinstance(properties[key], Mapping):
                _prune(item, properties[key])
            elif additional is not None:
                _prune(item, additional)
    elif isinstance(value, list):
        items = _items(schema)
        if items is not None:
            for item in value:
                _skip_prune(item, items)


# =============================================================================================
# Defaulting


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """Return a copy of ``obj`` with the schema's ``default`` values applied as the apiserver does.

    First removes ``null`` values of fields that are neither ``nullable`` nor defaulted (the
    apiserver's ``PruneNonNullableNullsWithoutDefaults``, run right after pruning); then, walking
    the object: a property with a ``default`` that is absent, or null without ``nullable``, gets a
    copy of the default; array items and map values that are null get their schema's default;
    nested defaults only apply inside objects that exist (and inside defaults just applied).
    """
    result = copy.deepcopy(obj)
    _prune_nulls(result, schema if isinstance(schema, Mapping) else None)
    _default(result, schema if isinstance(schema, Mapping) else None)
    return result


def _non_nullable_null_without_default(value: Any, schema: Mapping[str, Any] | None) -> bool:
    return value is None and schema is not None and not _nullable(schema) and not _has_default(schema)


def _prune_nulls(value: Any, schema: Mapping[str, Any] | None) -> None:
    if isinstance(value, dict):
        for key in list(value):
            sub = _schema_for_field(schema, key) if schema is not None else None
            if _non_nullable_null_without_default(value[key], sub):
                del value[key]
            else:
                _prune_nulls(value[key], sub)
    elif isinstance(value, list):
        items = _items(schema) if schema is not None else None
        for item in value:
            _prune_nulls(item, items)


def _default_of(schema: Mapping[str, Any]) -> Any:
    return copy.deepcopy(schema.get("default"))


def _default(value: Any, schema: Mapping[str, Any] | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        properties = _properties(schema)
        for key, prop in properties.items():
            if not _has_default(prop):
                continue
            if key not in value or (value[key] is None and not _nullable(prop)):
                value[key] = _default_of(prop)
        additional = _additional(schema)
        for key in list(value):
            if key in properties and isinstance(properties[key], Mapping):
                _default(value[key], properties[key])
            elif additional is not None:
                if value[key] is None and not _nullable(additional):
                    value[key] = _default_of(additional)
                _default(value[key], additional)
    elif isinstance(value, list):
        items = _items(schema)
        if items is None:
            return
        for position, item in enumerate(value):
            if item is None and not _nullable(items):
                value[position] = _default_of(items)
            _default(value[position], items)


# =============================================================================================
# Formats (kube-openapi strfmt, restricted to the formats the apiserver supports)


def _matcher(pattern: str) -> Callable[[str], bool]:
    regex = _re2(pattern)
    return lambda text: regex.search(text) is not None


@functools.lru_cache(maxsize=512)
def _re2(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options=options)


def _re2_error(pattern: str) -> str | None:
    try:
        _re2(pattern)
    except re2.error as error:
        detail = error.args[0] if error.args else error
        return detail.decode() if isinstance(detail, bytes) else str(detail)
    return None


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


_TIME = re.compile(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$")


def _is_date_time(text: str) -> bool:
    if len(text) < 4:
        return False
    parts = text.lower().split("t")
    if len(parts) < 2 or not _is_date(parts[0]):
        return False
    found = _TIME.match(parts[1])
    if found is None:
        return False
    return found.group(1) <= "23" and found.group(2) <= "59" and found.group(3) <= "59"


_GO_DURATION = re.compile(r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+|[-+]?0")
_LOOSE_DURATION = re.compile(r"(\d+)\s*([A-Za-zµ]+)")
_DURATION_UNITS = (
    ("ns", "nano"),
    ("us", "µs", "micro"),
    ("ms", "milli"),
    ("s", "sec"),
    ("m", "min"),
    ("h", "hr", "hour"),
    ("d", "day"),
    ("w", "wk", "week"),
)


def _is_duration(text: str) -> bool:
    if _GO_DURATION.fullmatch(text):
        return True
    for _, unit_text in _LOOSE_DURATION.findall(text):
        unit = unit_text.strip().lower()
        for variants in _DURATION_UNITS:
            for position, variant in enumerate(variants):
                last = position == len(variants) - 1
                if (last and unit.startswith(variant)) or variant == unit:
                    return True
    return False


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


_MAC = re.compile(
    r"^(?:[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){7}"
    r"|[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){19}|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){2,9})$"
)
_HOSTNAME = (
    r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]"
    r"{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z0-9\p{S}\p{L}])(-?[a-zA-Z0-9\p{S}\p{L}]){1,62})$"
)


def _is_hostname(text: str) -> bool:
    if not _matcher(_HOSTNAME)(text) or len(text.encode()) > 255:
        return False
    return all(len(label.encode()) <= 63 for label in text.split("."))


def _is_email(text: str) -> bool:
    # net/mail.ParseAddress, approximated: an optional display name and one addr-spec.
    found = re.fullmatch(r"\s*(?:[^<>@]*<\s*([^<>\s]+@[^<>\s]+)\s*>|([^<>\s@]+@[^<>\s@]+))\s*", text)
    if found is None:
        return False
    address = found.group(1) or found.group(2)
    local, _, domain = address.rpartition("@")
    return bool(local) and bool(domain) and ".." not in address and not domain.startswith(".")


def _is_request_uri(text: str) -> bool:
    # net/url.ParseRequestURI: an absolute URI, or an absolute path.
    if any(ord(c) < 0x20 or c in " \x7f" for c in text):
        return False
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:.", text)) or text.startswith("/")


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        number = int(char)
        if position % 2 == 1:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


_CREDIT_CARD = re.compile(
    r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|(222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)[0-9]{12}"
    r"|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11}"
    r"|6[27][0-9]{14})$"
)


def _is_credit_card(text: str) -> bool:
    digits = re.sub(r"[^0-9]", "", text)
    return bool(_CREDIT_CARD.match(digits)) and _luhn(digits)


def _is_isbn10(text: str) -> bool:
    clean = re.sub(r"[\s-]", "", text)
    if not re.fullmatch(r"[0-9]{9}X|[0-9]{10}", clean):
        return False
    total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(clean))
    return total % 11 == 0


def _is_isbn13(text: str) -> bool:
    clean = re.sub(r"[\s-]", "", text)
    if not re.fullmatch(r"[0-9]{13}", clean):
        return False
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(clean))
    return total % 10 == 0


_BYTE = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
_RGB = r"(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])"

_FORMATS: dict[str, Callable[[str], bool]] = {
    "bsonobjectid": lambda s: bool(re.fullmatch(r"[0-9a-fA-F]{24}", s)),
    "uri": _is_request_uri,
    "email": _is_email,
    "hostname": _is_hostname,
    "ipv4": _is_ipv4,
    "ipv6": _is_ipv6,
    "cidr": _is_cidr,
    "mac": lambda s: bool(_MAC.match(s)),
    "uuid": _matcher(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid3": _matcher(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid4": _matcher(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"),
    "uuid5": _matcher(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"),
    "isbn": lambda s: _is_isbn10(s) or _is_isbn13(s),
    "isbn10": _is_isbn10,
    "isbn13": _is_isbn13,
    "creditcard": _is_credit_card,
    "ssn": lambda s: bool(re.fullmatch(r"\d{3}[- ]?\d{2}[- ]?\d{4}", s)),
    "hexcolor": lambda s: bool(re.fullmatch(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", s)),
    "rgbcolor": lambda s: bool(re.fullmatch(rf"rgb\(\s*{_RGB}\s*,\s*{_RGB}\s*,\s*{_RGB}\s*\)", s)),
    "byte": lambda s: bool(_BYTE.match(s)),
    "password": lambda s: True,
    "date": _is_date,
    "duration": _is_duration,
    "datetime": _is_date_time,
}


def _supported_format(schema: Mapping[str, Any]) -> str:
    """The schema's format when the apiserver checks it; unsupported formats are ignored."""
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt.replace("-", "") in _FORMATS:
        return fmt
    return ""


# =============================================================================================
# OpenAPI value validation (kube-openapi's SchemaValidator)


def _types(schema: Mapping[str, Any]) -> list[str]:
    if schema.get("x-kubernetes-int-or-string") is True:
        return ["integer", "string"]
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) and kind else []


def _go_kind(data: Any) -> tuple[str, str]:
    """kube-openapi's (JSON type, Go format) of a decoded value."""
    if isinstance(data, bool):
        return "boolean", ""
    if _is_int(data):
        return "integer", "int64"
    if _is_number(data):
        return "number", "float64"
    if isinstance(data, str):
        return "string", ""
    if isinstance(data, list):
        return "array", ""
    if isinstance(data, Mapping):
        return "object", ""
    return "", ""


def _is_json_integer(value: float) -> bool:
    """go-openapi's ``swag.IsFloat64AJSONInteger``."""
    if value != value or value in (float("inf"), float("-inf")) or abs(value) > 2**53:
        return False
    rounded = float(round(value))
    if rounded == value:
        return True
    diff = abs(value - rounded)
    return diff / min(abs(value) + abs(rounded), 1.7976931348623157e308) < 1e-9


def _name(path: str) -> str:
    """The error path for a kube-openapi ``Validation`` error named ``path``."""
    trimmed = path[1:] if path.startswith(".") else path
    return trimmed if trimmed and path != "." else "<nil>"


class _OpenAPIValidator:
    def __init__(self, *, ratchet: bool) -> None:
        self.ratchet = ratchet

    def validate(self, schema: Any, data: Any, path: str, old: Any) -> list[FieldError]:
        if not isinstance(schema, Mapping):
            return []
        errors = self._validate(schema, data, path, old)
        if errors and self.ratchet and old is not _MISSING and _json_equal(old, data):
            return []  # unchanged value: the apiserver ratchets these errors into warnings
        return errors

    def _validate(self, schema: Mapping[str, Any], data: Any, path: str, old: Any) -> list[FieldError]:
        types = _types(schema)
        fmt = _supported_format(schema)
        if data is None:
            return self._type(schema, types, fmt, data, path) + self._enum(schema, data, path)
        errors = self._type(schema, types, fmt, data, path)
        errors += self._junctors(schema, data, path)
        if isinstance(data, str):
            errors += self._string(schema, data, path)
            if fmt and not _FORMATS[fmt.replace("-", "")](data):
                detail = f"{path} in body must be of type {fmt}: {_go_quote(data)}"
                errors.append(_type_invalid(_name(path), data, detail))
        if _is_number(data):
            errors += self._number(schema, data, path)
        if isinstance(data, list):
            errors += self._array(schema, data, path, old)
        errors += self._enum(schema, data, path)
        if isinstance(data, Mapping):
            errors += self._object(schema, data, path, old)
        return errors

    def _type(
        self, schema: Mapping[str, Any], types: list[str], fmt: str, data: Any, path: str
    ) -> list[FieldError]:
        if not types and not fmt:
            return []
        if data is None:
            if types and not _nullable(schema):
                return [self._type_error(path, ",".join(types), "null")]
            return []
        kind, go_format = _go_kind(data)
        float_int = kind == "number" and "integer" in types and _is_json_integer(float(data))
        int_float = kind == "integer" and "number" in types
        text_or_list = isinstance(data, str | list)
        if not text_or_list and fmt and not (kind in types or go_format == fmt or float_int or int_float):
            return [self._type_error(path, fmt, go_format)]
        if "number" not in types and "integer" not in types and fmt and text_or_list:
            return []
        if not (kind in types or float_int or int_float):
            return [self._type_error(path, ",".join(types), kind)]
        return []

    @staticmethod
    def _type_error(path: str, expected: str, actual: str) -> FieldError:
        return _type_invalid(
            _name(path), actual, f"{path} in body must be of type {expected}: {_go_quote(actual)}"
        )

    def _junctors(self, schema: Mapping[str, Any], data: Any, path: str) -> list[FieldError]:
        errors: list[FieldError] = []
        quoted = _go_quote(path)

        def composite(detail: str) -> FieldError:
            return _invalid("<nil>", "", detail)

        any_of = schema.get("anyOf")
        if isinstance(any_of, list) and any_of:
            best: list[FieldError] | None = None
            for alternative in any_of:
                result = self.validate(alternative, data, path, _MISSING)
                if not result:
                    best = None
                    break
                if best is None or len(result) < len(best):
                    best = result
            else:
                errors.append(composite(f"{quoted} must validate at least one schema (anyOf)"))
            errors += best or []
        one_of = schema.get("oneOf")
        if isinstance(one_of, list) and one_of:
            valid = 0
            best = None
            for alternative in one_of:
                result = self.validate(alternative, data, path, _MISSING)
                if not result:
                    valid += 1
                    best = None
                elif valid == 0 and (best is None or len(result) < len(best)):
                    best = result
            if valid != 1:
                found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                errors.append(composite(f"{quoted} must validate one and only one schema (oneOf). {found}"))
                errors += best or []
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of:
            valid = 0
            for part in all_of:
                result = self.validate(part, data, path, _MISSING)
                valid += not result
                errors += result
            if valid != len(all_of):
                suffix = ". None validated" if valid == 0 else ""
                errors.append(composite(f"{quoted} must validate all the schemas (allOf){suffix}"))
        negated = schema.get("not")
        if isinstance(negated, Mapping) and not self.validate(negated, data, path, _MISSING):
            errors.append(composite(f"{quoted} must not validate the schema (not)"))
        return errors

    def _string(self, schema: Mapping[str, Any], data: str, path: str) -> list[FieldError]:
        max_length = schema.get("maxLength")
        if _is_int(max_length) and len(data) > max_length:
            unit = "byte" if max_length == 1 else "bytes"
            return [
                FieldError(
                    _name(path), "FieldValueTooLong", f"Too long: may not be more than {max_length} {unit}"
                )
            ]
        min_length = schema.get("minLength")
        if _is_int(min_length) and len(data) < min_length:
            return [_invalid(_name(path), data, f"{path} in body should be at least {min_length} chars long")]
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and pattern:
            problem = _re2_error(pattern)
            if problem is not None:
                detail = f"{path} in body should match '{pattern}, but pattern is invalid: {problem}'"
                return [_invalid(_name(path), data, detail)]
            if _re2(pattern).search(data) is None:
                return [_invalid(_name(path), data, f"{path} in body should match '{pattern}'")]
        return []

    def _number(self, schema: Mapping[str, Any], data: int | float, path: str) -> list[FieldError]:
        errors: list[FieldError] = []
        integer = _is_int(data)
        factor = schema.get("multipleOf")
        if _is_number(factor):
            if factor <= 0:
                errors.append(
                    _invalid(
                        _name(path),
                        factor,
                        f"factor MultipleOf declared for {path} must be positive: {_go_number(factor)}",
                    )
                )
            elif integer and float(factor).is_integer():
                if int(data) % int(factor) != 0:
                    detail = f"{path} in body should be a multiple of {int(factor)}"
                    errors.append(_invalid(_name(path), data, detail))
            elif not _is_json_integer(float(data) / float(factor)):
                detail = f"{path} in body should be a multiple of {_go_float(float(factor))}"
                errors.append(_invalid(_name(path), data, detail))
        for bound, exclusive_key, word in (
            ("minimum", "exclusiveMinimum", "greater"),
            ("maximum", "exclusiveMaximum", "less"),
        ):
            limit = schema.get(bound)
            if not _is_number(limit):
                continue
            exclusive = schema.get(exclusive_key) is True
            if integer:
                limit_value: int | float = int(limit)
                limit_text = str(limit_value)
                value: int | float = data
            else:
                limit_value = float(limit)
                limit_text = _go_float(limit_value)
                value = float(data)
            if word == "greater":
                failed = value <= limit_value if exclusive else value < limit_value
            else:
                failed = value >= limit_value if exclusive else value > limit_value
            if failed:
                relation = f"{word} than" if exclusive else f"{word} than or equal to"
                errors.append(
                    _invalid(_name(path), data, f"{path} in body should be {relation} {limit_text}")
                )
        return errors

    def _array(self, schema: Mapping[str, Any], data: list[Any], path: str, old: Any) -> list[FieldError]:
        errors: list[FieldError] = []
        items = _items(schema)
        if items is not None:
            lookup = _MapListLookup(schema, old)
            for position, item in enumerate(data):
                errors += self.validate(items, item, f"{path}[{position}]", lookup.old_item(item))
        min_items = schema.get("minItems")
        if _is_int(min_items) and len(data) < min_items:
            errors.append(
                _invalid(_name(path), len(data), f"{path} in body should have at least {min_items} items")
            )
        max_items = schema.get("maxItems")
        if _is_int(max_items) and len(data) > max_items:
            errors.append(_too_many(_name(path), len(data), max_items))
        if schema.get("uniqueItems") is True:
            seen: list[Any] = []
            for item in data:
                if any(_json_equal(item, other) for other in seen):
                    errors.append(_invalid(_name(path), "", f"{path} in body shouldn't contain duplicates"))
                    break
                seen.append(item)
        return errors

    def _enum(self, schema: Mapping[str, Any], data: Any, path: str) -> list[FieldError]:
        enum = schema.get("enum")
        if not isinstance(enum, list) or not enum:
            return []
        if data is not None and any(_enum_matches(data, allowed) for allowed in enum):
            return []
        allowed_text = [allowed if isinstance(allowed, str) else _go_json(allowed) for allowed in enum]
        return [_not_supported(_name(path), data, allowed_text)]

    def _object(
        self, schema: Mapping[str, Any], data: Mapping[str, Any], path: str, old: Any
    ) -> list[FieldError]:
        count = len(data)
        min_properties = schema.get("minProperties")
        if _is_int(min_properties) and count < min_properties:
            detail = f"{path} in body should have at least {min_properties} properties"
            return [_invalid(_name(path), count, detail)]
        max_properties = schema.get("maxProperties")
        if _is_int(max_properties) and count > max_properties:
            return [_too_many(_name(path), count, max_properties)]
        errors: list[FieldError] = []
        properties = _properties(schema)
        additional_raw = schema.get("additionalProperties")
        additional = _additional(schema)
        old_map = old if isinstance(old, Mapping) else None
        for key, value in data.items():
            old_value = old_map[key] if old_map is not None and key in old_map else _MISSING
            if key in properties:
                errors += self.validate(properties[key], value, _child(path, key), old_value)
            elif additional_raw is False:
                detail = f"{path}.{key} in body is a forbidden property"
                errors.append(_invalid(_name(path), key, detail))
            elif additional is not None:
                errors += self.validate(additional, value, f"{path}.{key}", old_value)
        required = schema.get("required")
        if isinstance(required, list):
            for name in required:
                if isinstance(name, str) and name not in data:
                    errors.append(_required(_name(f"{path}.{name}")))
        return errors


def _enum_matches(data: Any, allowed: Any) -> bool:
    if isinstance(data, bool) or isinstance(allowed, bool):
        return isinstance(data, bool) and isinstance(allowed, bool) and data == allowed
    if _is_number(data) and _is_number(allowed):
        return bool(data == allowed)
    return _json_equal(data, allowed)


class _MapListLookup:
    """Correlates items of an ``x-kubernetes-list-type: map`` list with the old list by their keys."""

    def __init__(self, schema: Mapping[str, Any], old: Any) -> None:
        keys = schema.get("x-kubernetes-list-map-keys")
        self.keys: list[str] = (
            [k for k in keys if isinstance(k, str)]
            if schema.get("x-kubernetes-list-type") == "map" and isinstance(keys, list)
            else []
        )
        self.old = old if isinstance(old, list) and self.keys else []

    def _identity(self, item: Any) -> str | None:
        if not isinstance(item, Mapping):
            return None
        return _go_json({key: item[key] for key in self.keys if key in item})

    def old_item(self, item: Any) -> Any:
        identity = self._identity(item)
        if identity is None:
            return _MISSING
        for candidate in self.old:
            if self._identity(candidate) == identity:
                return candidate
        return _MISSING


# =============================================================================================
# x-kubernetes-list-type set/map uniqueness (structurallisttype.ValidateListSetsAndMaps)


def _scalar_identity(value: Any) -> tuple[str, str]:
    if isinstance(value, Mapping | list):
        return "compound", _go_json(value)
    if value is None:
        return "null", ""
    if isinstance(value, bool):
        return "bool", str(value)
    if _is_int(value):
        return "int64", str(value)
    if _is_number(value):
        return "float64", repr(float(value))
    return type(value).__name__, str(value)


def _non_unique(values: Sequence[Any]) -> list[int]:
    """Indices of the second appearance of every repeated value (Go equality per type)."""
    seen: dict[tuple[str, str], int] = {}
    repeated: list[int] = []
    for position, value in enumerate(values):
        identity = _scalar_identity(value)
        seen[identity] = seen.get(identity, 0) + 1
        if seen[identity] == 2:
            repeated.append(position)
    return repeated


def _list_type_errors(schema: Any, value: Any, path: str) -> list[FieldError]:
    if not isinstance(schema, Mapping):
        return []
    errors: list[FieldError] = []
    if isinstance(value, Mapping):
        additional = _additional(schema)
        if additional is not None:
            for key, item in value.items():
                errors += _list_type_errors(additional, item, _key(path, key))
        properties = _properties(schema)
        for key, item in value.items():
            if key in properties:
                errors += _list_type_errors(properties[key], item, _child(path, key))
    elif isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            errors += [_duplicate(_index(path, i), value[i]) for i in _non_unique(value)]
        elif list_type == "map":
            errors += _list_map_errors(schema, value, path)
        items = _items(schema)
        if items is not None:
            for position, item in enumerate(value):
                errors += _list_type_errors(items, item, _index(path, position))
    return errors


def _list_map_errors(schema: Mapping[str, Any], value: list[Any], path: str) -> list[FieldError]:
    for position, item in enumerate(value):
        if item is not None and not isinstance(item, Mapping):
            return [_invalid(_index(path, position), item, "must be an object for an array of list-type map")]
    if len(value) <= 1:
        return []
    raw_keys = schema.get("x-kubernetes-list-map-keys")
    key_names = [k for k in raw_keys if isinstance(k, str)] if isinstance(raw_keys, list) else []
    unspecified = object()
    if len(key_names) == 1:
        name = key_names[0]
        keys = [item[name] if isinstance(item, Mapping) and name in item else unspecified for item in value]
        identities = [("unspecified", "") if k is unspecified else _scalar_identity(k) for k in keys]
        seen: dict[tuple[str, str], int] = {}
        errors: list[FieldError] = []
        for position, identity in enumerate(identities):
            seen[identity] = seen.get(identity, 0) + 1
            if seen[identity] == 2:
                shown = {} if keys[position] is unspecified else {name: keys[position]}
                errors.append(_duplicate(_index(path, position), shown))
        return errors
    composite = [
        {k: item[k] for k in key_names if k in item} if isinstance(item, Mapping) else {} for item in value
    ]
    return [_duplicate(_index(path, i), composite[i]) for i in _non_unique(composite)]


# =============================================================================================
# CEL validation rules (x-kubernetes-validations)


_REASONS = {
    "FieldValueInvalid",
    "FieldValueForbidden",
    "FieldValueRequired",
    "FieldValueDuplicate",
}


def _rule_text(rule: Mapping[str, Any]) -> str:
    message = rule.get("message")
    if isinstance(message, str) and message.strip():
        return message.strip()
    source = rule.get("rule")
    return source.strip() if isinstance(source, str) else ""


def _rule_message(rule: Mapping[str, Any]) -> str:
    message = rule.get("message")
    if isinstance(message, str) and message:
        return message.strip()
    return f"failed rule: {_rule_text(rule)}"


def _error_for_reason(path: str, type_name: str, detail: str, reason: Any) -> FieldError:
    if reason == "FieldValueForbidden":
        return _forbidden(path, detail)
    if reason == "FieldValueRequired":
        return _required(path, detail)
    if reason == "FieldValueDuplicate":
        return _duplicate(path, type_name)
    return _invalid(path, type_name, detail)


def _field_path(field_path: str, schema: Mapping[str, Any]) -> str | None:
    """``cel.ValidFieldPath``: the normalized field path of a rule's ``fieldPath``, None if invalid."""
    tokens = re.findall(r"'(?:[^'\\]|\\.)*'|[.\[\]]|[^.\[\]']+", field_path)
    current: Any = schema
    out = ""
    position = 0

    def step(name: str) -> bool:
        nonlocal current, out
        properties = _properties(current)
        if properties:
            if name not in properties:
                return False
            out = _child(out, name)
            current = properties[name]
            return True
        additional = _additional(current)
        if additional is not None:
            out = _key(out, name)
            current = additional
            return True
        return False

    while position < len(tokens):
        piece = tokens[position]
        if piece == ".":
            if position + 1 >= len(tokens) or not step(tokens[position + 1]):
                return None
            position += 2
        elif piece == "[":
            if position + 2 >= len(tokens) or tokens[position + 2] != "]":
                return None
            quoted = tokens[position + 1]
            if len(quoted) < 2 or quoted[0] != "'" or quoted[-1] != "'":
                return None
            name = re.sub(r"\\(.)", r"\1", quoted[1:-1])
            if not step(name):
                return None
            position += 3
        else:
            return None
    return out or None


class _CELValidator:
    def __init__(self, *, ratchet: bool) -> None:
        self.ratchet = ratchet

    def validate(
        self,
        schema: Any,
        value: Any,
        old: Any,
        path: str,
        *,
        resource_root: bool,
        unchanged: bool,
    ) -> list[FieldError]:
        if not isinstance(schema, Mapping) or value is None:
            return []
        errors: list[FieldError] = []
        rules = schema.get("x-kubernetes-validations")
        if isinstance(rules, list) and rules:
            errors += self._rules(schema, rules, value, old, path, resource_root, unchanged)
        if isinstance(value, Mapping):
            map_type = schema.get("x-kubernetes-map-type")
            correlatable = map_type in (None, "granular", "atomic")
            old_map = old if correlatable and isinstance(old, Mapping) else {}
            additional = _additional(schema)
            properties = _properties(schema)
            for key, item in value.items():
                sub = properties.get(key) if key in properties else additional
                if not isinstance(sub, Mapping):
                    continue
                child_path = _child(path, key) if key in properties else _key(path, key)
                old_item = old_map.get(key) if key in old_map else None
                errors += self.validate(
                    sub,
                    item,
                    old_item,
                    child_path,
                    resource_root=_embedded(sub),
                    unchanged=self._unchanged(key in old_map, old_item, item, unchanged),
                )
        elif isinstance(value, list):
            items = _items(schema)
            if items is not None:
                lookup = _MapListLookup(schema, old)
                for position, item in enumerate(value):
                    old_item = lookup.old_item(item)
                    errors += self.validate(
                        items,
                        item,
                        None if old_item is _MISSING else old_item,
                        _index(path, position),
                        resource_root=_embedded(items),
                        unchanged=self._unchanged(old_item is not _MISSING, old_item, item, unchanged),
                    )
        return errors

    def _unchanged(self, correlated: bool, old: Any, new: Any, parent_unchanged: bool) -> bool:
        if not self.ratchet:
            return False
        if correlated:
            return _json_equal(old, new)
        return parent_unchanged

    def _rules(
        self,
        schema: Mapping[str, Any],
        rules: list[Any],
        value: Any,
        old: Any,
        path: str,
        resource_root: bool,
        unchanged: bool,
    ) -> list[FieldError]:
        errors: list[FieldError] = []
        declared_type = schema.get("type")
        type_name = declared_type if isinstance(declared_type, str) else ""
        self_value = cel.to_cel(value, schema, resource_root=resource_root)
        old_value = cel.to_cel(old, schema, resource_root=resource_root) if old is not None else None
        where = _rendered(path)
        for rule in rules:
            if not isinstance(rule, Mapping):
                continue
            source = rule.get("rule")
            if not isinstance(source, str) or not source.strip():
                continue
            compiled = cel.compile_expression(source)
            if compiled.error is not None:
                errors.append(_invalid(where, type_name, f"rule compile error: {compiled.error}"))
                continue
            optional_old = rule.get("optionalOldSelf") is True
            if compiled.uses_old_self and old is None and not optional_old:
                continue  # transition rules only run when an old value correlates
            activation: dict[str, Any] = {"self": self_value}
            if compiled.uses_old_self:
                if optional_old:
                    activation["oldSelf"] = cel.OptionalValue(old_value, present=old is not None)
                else:
                    activation["oldSelf"] = old_value
            try:
                result = cel.evaluate(compiled, activation)
            except cel.CELEvaluationError as error:
                if error.no_such_overload:
                    detail = (
                        "'no such overload': call arguments did not match a supported operator, "
                        f"function or macro signature for rule: {_rule_text(rule)}"
                    )
                else:
                    detail = f"{error.message} evaluating rule: {_rule_text(rule)}"
                errors.append(_invalid(where, type_name, detail))
                continue
            if cel.is_true(result):
                continue
            if not cel.is_bool(result):
                detail = "rule compile error: compilation failed: cel expression must evaluate to a bool"
                errors.append(_invalid(where, type_name, detail))
                continue
            target = path
            field_path = rule.get("fieldPath")
            if isinstance(field_path, str) and field_path.strip():
                normalized = _field_path(field_path.strip(), schema)
                if normalized is not None:
                    target = _child(path, normalized)
            detail_text = self._message_expression(rule, activation) or _rule_message(rule)
            if not compiled.uses_old_self and unchanged:
                continue  # ratcheted: the value did not change since the stored object
            errors.append(_error_for_reason(_rendered(target), type_name, detail_text, rule.get("reason")))
        return errors

    @staticmethod
    def _message_expression(rule: Mapping[str, Any], activation: Mapping[str, Any]) -> str | None:
        expression = rule.get("messageExpression")
        if not isinstance(expression, str) or not expression.strip():
            return None
        compiled = cel.compile_expression(expression)
        if compiled.error is not None:
            return None
        if compiled.uses_old_self and "oldSelf" not in activation:
            return None
        plain = dict(activation)
        if isinstance(plain.get("oldSelf"), cel.OptionalValue):
            plain["oldSelf"] = plain["oldSelf"].inner
        try:
            result = cel.evaluate(compiled, plain)
        except cel.CELEvaluationError:
            return None
        text = cel.as_string(result)
        if text is None:
            return None
        text = text.strip()
        if not text or "\n" in text or len(text.encode()) > 5 * 1024:
            return None
        return text


def _has_rules(schema: Any, depth: int = 0) -> bool:
    if not isinstance(schema, Mapping) or depth > 64:
        return False
    if schema.get("x-kubernetes-validations"):
        return True
    children: list[Any] = [*_properties(schema).values(), _items(schema), _additional(schema)]
    return any(_has_rules(child, depth + 1) for child in children)


# =============================================================================================
# validate


def validate(schema: dict[str, Any], obj: Any, *, old: Any = None) -> list[FieldError]:
    """Validate a custom resource against its CRD schema; ``old`` is the stored object on update.

    ``obj`` should already be pruned and defaulted (see :func:`prune`, :func:`apply_defaults`), as
    it is in the apiserver. Never raises: a rule that fails to compile or to evaluate is reported
    as a FieldError on the rule's node.
    """
    updating = old is not None
    errors: list[FieldError] = []
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    name = meta.get("name") if isinstance(meta, Mapping) else None
    generate_name = meta.get("generateName") if isinstance(meta, Mapping) else None
    if not name and not generate_name:
        errors.append(_required("metadata.name", "name or generateName is required"))
    root: Any = schema
    if not isinstance(root, Mapping):
        return errors
    errors += _OpenAPIValidator(ratchet=updating).validate(schema, obj, "", old if updating else _MISSING)
    errors += _list_type_errors(schema, obj, "")
    if _has_rules(schema):
        if any(error.type in _BLOCKING for error in errors):
            errors.append(_invalid("<nil>", None, _NOT_CHECKED))
        else:
            errors += _CELValidator(ratchet=updating).validate(
                schema,
                obj,
                old,
                "",
                resource_root=True,
                unchanged=updating and _json_equal(old, obj),
            )
    return errors


# =============================================================================================
# check_structural


_OPENAPI_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_UNSUPPORTED = (
    ("id", "id is not supported"),
    ("additionalItems", "additionalItems is not supported"),
    ("patternProperties", "patternProperties is not supported"),
    ("definitions", "definitions is not supported"),
    ("dependencies", "dependencies is not supported"),
    ("$ref", "$ref is not supported"),
)
_JUNCTORS = ("allOf", "anyOf", "oneOf")
_NESTED_FORBIDDEN = (
    ("type", "must be empty to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("externalDocs", "must be undefined to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def _set(schema: Mapping[str, Any], key: str) -> bool:
    """Whether a keyword is set to a non-zero value (Go's zero values count as unset)."""
    value = schema.get(key)
    return value not in (None, False, "", [], {})


def _problem(path: str, error: FieldError) -> str:
    body = error.message
    return f"{path}: {body}"


class _StructuralChecker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, path: str, error: FieldError) -> None:
        self.problems.append(_problem(path, error))

    # --- structural invariants and OpenAPI restrictions of a node on the structural spine -----

    def node(self, schema: Any, path: str, level: str, *, uncorrelatable: str | None = None) -> None:
        if not isinstance(schema, Mapping):
            self.add(path, _invalid(path, _go_json(schema), "must be a schema object"))
            return
        kind = schema.get("type")
        type_name = kind if isinstance(kind, str) else ""
        if type_name == "null":
            self.add(
                f"{path}.type", _forbidden("", "type cannot be set to null, use nullable as an alternative")
            )
        elif type_name and type_name not in _OPENAPI_TYPES:
            self.add(f"{path}.type", _not_supported("", type_name, _OPENAPI_TYPES))
        for key, detail in _UNSUPPORTED:
            if _set(schema, key):
                self.add(f"{path}.{key}", _forbidden("", detail))
        raw_items = schema.get("items")
        if isinstance(raw_items, list):
            self.add(f"{path}.items", _forbidden("", "items must be a schema object and not an array"))
        if schema.get("uniqueItems") is True:
            self.add(
                f"{path}.uniqueItems",
                _forbidden(
                    "", "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
                ),
            )
        additional = schema.get("additionalProperties")
        has_additional = "additionalProperties" in schema and additional is not None
        if (
            has_additional
            and _properties(schema)
            and (additional is False or isinstance(additional, Mapping))
        ):
            self.add(
                f"{path}.additionalProperties",
                _forbidden("", "additionalProperties and properties are mutual exclusive"),
            )
        if schema.get("x-kubernetes-preserve-unknown-fields") is False:
            self.add(
                f"{path}.x-kubernetes-preserve-unknown-fields",
                _invalid("", False, "must be true or undefined"),
            )
        self._list_and_map_types(schema, path, type_name)
        self._structural(schema, path, level, type_name)
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and pattern:
            problem = _re2_error(pattern)
            if problem is not None:
                detail = f"must be a valid regular expression, but isn't: {problem}"
                self.add(f"{path}.pattern", _invalid("", pattern, detail))
        self._rules(schema, path, uncorrelatable)
        # recurse along the structural spine
        if isinstance(raw_items, Mapping):
            list_type = schema.get("x-kubernetes-list-type")
            items_uncorrelatable = uncorrelatable
            if items_uncorrelatable is None and list_type != "map":
                items_uncorrelatable = f"{path}.items"
            self.node(raw_items, f"{path}.items", "item", uncorrelatable=items_uncorrelatable)
        for name, sub in _properties(schema).items():
            self.node(sub, f"{path}.properties[{name}]", "field", uncorrelatable=uncorrelatable)
        if isinstance(additional, Mapping):
            if level == "root":
                self.add(f"{path}.additionalProperties", _forbidden("", "must not be used at the root"))
            self.node(additional, f"{path}.additionalProperties", "field", uncorrelatable=uncorrelatable)
        self._value_validation(schema, path, level, skip_any_of=schema.get("anyOf") == _INT_OR_STRING_ANY_OF)
        self._completeness(schema, schema, path, path)

    def _list_and_map_types(self, schema: Mapping[str, Any], path: str, type_name: str) -> None:
        map_type = schema.get("x-kubernetes-map-type")
        if map_type is not None:
            if type_name != "object":
                detail = "must be object if x-kubernetes-map-type is specified"
                self.add(
                    f"{path}.type",
                    _required("", detail) if not type_name else _invalid("", type_name, detail),
                )
            if map_type not in ("atomic", "granular"):
                self.add(
                    f"{path}.x-kubernetes-map-type", _not_supported("", map_type, ["atomic", "granular"])
                )
        list_type = schema.get("x-kubernetes-list-type")
        if list_type is not None:
            if type_name != "array":
                detail = "must be array if x-kubernetes-list-type is specified"
                self.add(
                    f"{path}.type",
                    _required("", detail) if not type_name else _invalid("", type_name, detail),
                )
            if list_type not in ("atomic", "set", "map"):
                self.add(
                    f"{path}.x-kubernetes-list-type", _not_supported("", list_type, ["atomic", "set", "map"])
                )
        map_keys = schema.get("x-kubernetes-list-map-keys")
        if isinstance(map_keys, list) and map_keys and list_type != "map":
            detail = "must be map if x-kubernetes-list-map-keys is non-empty"
            error = _required("", detail) if list_type is None else _invalid("", list_type, detail)
            self.add(f"{path}.x-kubernetes-list-type", error)
        if list_type != "map":
            return
        if not (isinstance(map_keys, list) and map_keys):
            self.add(
                f"{path}.x-kubernetes-list-map-keys",
                _required("", "must not be empty if x-kubernetes-list-type is map"),
            )
        items = schema.get("items")
        if items is None:
            self.add(f"{path}.items", _required("", "must have a schema if x-kubernetes-list-type is map"))
            return
        if not isinstance(items, Mapping):
            return
        if items.get("type") != "object":
            detail = "must be object if parent array's x-kubernetes-list-type is map"
            self.add(f"{path}.items.type", _invalid("", items.get("type", ""), detail))
            return
        item_properties = _properties(items)
        raw_required = items.get("required")
        required: list[Any] = raw_required if isinstance(raw_required, list) else []
        seen: set[str] = set()
        for key in map_keys if isinstance(map_keys, list) else []:
            prop = item_properties.get(key)
            if isinstance(prop, Mapping):
                if prop.get("type") in ("array", "object"):
                    detail = "must be a scalar type if parent array's x-kubernetes-list-type is map"
                    self.add(f"{path}.items.properties[{key}].type", _invalid("", "object", detail))
                if key not in required and not _has_default(prop):
                    detail = (
                        "this property is in x-kubernetes-list-map-keys, "
                        "so it must have a default or be a required property"
                    )
                    self.add(f"{path}.items.properties[{key}].default", _required("", detail))
                if _nullable(prop):
                    detail = "this property is in x-kubernetes-list-map-keys, so it cannot be nullable"
                    self.add(f"{path}.items.properties[{key}].nullable", _forbidden("", detail))
            else:
                detail = "entries must all be names of item properties"
                self.add(f"{path}.x-kubernetes-list-map-keys", _invalid("", map_keys, detail))
            if key in seen:
                detail = "must not contain duplicate entries"
                self.add(f"{path}.x-kubernetes-list-map-keys", _invalid("", map_keys, detail))
            seen.add(key)

    def _structural(self, schema: Mapping[str, Any], path: str, level: str, type_name: str) -> None:
        if schema.get("type") == "array" and schema.get("items") is None:
            self.add(f"{path}.items", _required("", "must be specified"))
        int_or_string = schema.get("x-kubernetes-int-or-string") is True
        preserve = _preserves(schema)
        embedded = _embedded(schema)
        if int_or_string and preserve:
            self.add(
                f"{path}.x-kubernetes-preserve-unknown-fields",
                _invalid("", True, "must be false if x-kubernetes-int-or-string is true"),
            )
        if int_or_string and embedded:
            self.add(
                f"{path}.x-kubernetes-embedded-resource",
                _invalid("", True, "must be false if x-kubernetes-int-or-string is true"),
            )
        if embedded and type_name != "object":
            detail = "must be object if x-kubernetes-embedded-resource is true"
            self.add(
                f"{path}.type", _required("", detail) if not type_name else _invalid("", type_name, detail)
            )
        elif not type_name and not int_or_string and not preserve:
            detail = {
                "root": "must not be empty at the root",
                "item": "must not be empty for specified array items",
                "field": "must not be empty for specified object fields",
            }[level]
            self.add(f"{path}.type", _required("", detail))
        if embedded and _set(schema, "additionalProperties"):
            detail = "must not be used if x-kubernetes-embedded-resource is set"
            self.add(f"{path}.additionalProperties", _forbidden("", detail))
        if level == "root" and type_name and type_name != "object":
            self.add(f"{path}.type", _invalid("", type_name, "must be object at the root"))
        check_metadata = level == "root" or embedded
        properties = _properties(schema)
        for meta_field in ("kind", "apiVersion"):
            sub = properties.get(meta_field)
            if check_metadata and isinstance(sub, Mapping) and sub.get("type") != "string":
                self.add(
                    f"{path}.properties[{meta_field}].type",
                    _invalid("", sub.get("type", ""), "must be string"),
                )
        metadata = properties.get("metadata")
        if isinstance(metadata, Mapping):
            self._metadata(metadata, check_metadata, level, f"{path}.properties[metadata]")
        if embedded and not preserve and not properties:
            detail = (
                "must not be empty if x-kubernetes-embedded-resource is true "
                "without x-kubernetes-preserve-unknown-fields"
            )
            self.add(f"{path}.properties", _required("", detail))

    def _metadata(self, metadata: Mapping[str, Any], check: bool, level: str, path: str) -> None:
        if check and metadata.get("type") != "object":
            self.add(f"{path}.type", _invalid("", metadata.get("type", ""), "must be object"))
        if level != "root":
            return
        remaining = {k: v for k, v in metadata.items() if k not in ("type", "default")}
        names = set(_properties(metadata))
        if names and names <= {"name", "generateName"}:
            remaining.pop("properties", None)
        elif "properties" in remaining and not remaining["properties"]:
            remaining.pop("properties")
        if remaining:
            detail = (
                "must not specify anything other than name and generateName, "
                "but metadata is implicitly specified"
            )
            self.add(path, _forbidden("", detail))

    # --- value validations (allOf/anyOf/oneOf/not) ---------------------------------------

    def _value_validation(
        self, schema: Mapping[str, Any], path: str, level: str, *, skip_any_of: bool
    ) -> None:
        for junctor in _JUNCTORS:
            parts = schema.get(junctor)
            if not isinstance(parts, list):
                continue
            if junctor == "anyOf" and skip_any_of:
                continue
            for position, part in enumerate(parts):
                skip = (
                    junctor == "allOf"
                    and position == 0
                    and _schema_at(part, "anyOf") == _INT_OR_STRING_ANY_OF
                )
                self._nested(part, f"{path}.{junctor}[{position}]", level, skip_any_of=skip)
        negated = schema.get("not")
        if negated is not None:
            self._nested(negated, f"{path}.not", level, skip_any_of=False)

    def _nested(self, schema: Any, path: str, level: str, *, skip_any_of: bool) -> None:
        if not isinstance(schema, Mapping):
            return
        self._value_validation(schema, path, level, skip_any_of=skip_any_of)
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and pattern and _re2_error(pattern) is not None:
            detail = f"must be a valid regular expression, but isn't: {_re2_error(pattern)}"
            self.add(f"{path}.pattern", _invalid("", pattern, detail))
        items = schema.get("items")
        if isinstance(items, Mapping):
            self._nested(items, f"{path}.items", level, skip_any_of=False)
        for name, sub in _properties(schema).items():
            self._nested(sub, f"{path}.properties[{name}]", "field", skip_any_of=False)
        for key, detail in _NESTED_FORBIDDEN:
            if _set(schema, key):
                self.add(f"{path}.{key}", _forbidden("", detail))
        if "additionalProperties" in schema:
            self.add(f"{path}.additionalProperties", _forbidden("", "must be undefined to be structural"))
        if "metadata" in _properties(schema):
            self.add(
                f"{path}.properties[metadata]", _forbidden("", "must not be specified in a nested context")
            )

    def _completeness(
        self, spine: Any, validation: Mapping[str, Any], spine_path: str, value_path: str
    ) -> None:
        """Every field or array a value validation mentions must also be on the structural spine."""
        for junctor in _JUNCTORS:
            parts = validation.get(junctor)
            if isinstance(parts, list):
                for position, part in enumerate(parts):
                    self._nested_completeness(part, spine, spine_path, f"{value_path}.{junctor}[{position}]")
        negated = validation.get("not")
        if isinstance(negated, Mapping):
            self._nested_completeness(negated, spine, spine_path, f"{value_path}.not")

    def _nested_completeness(self, nested: Any, spine: Any, spine_path: str, value_path: str) -> None:
        if not isinstance(nested, Mapping):
            return
        if not isinstance(spine, Mapping):
            self.add(spine_path, _required("", f"because it is defined in {value_path}"))
            return
        self._completeness(spine, nested, spine_path, value_path)
        items = nested.get("items")
        if isinstance(items, Mapping):
            self._nested_completeness(items, _items(spine), f"{spine_path}.items", f"{value_path}.items")
        spine_properties = _properties(spine)
        for name, sub in _properties(nested).items():
            if name not in spine_properties:
                detail = f"because it is defined in {value_path}.properties[{name}]"
                self.add(f"{spine_path}.properties[{name}]", _required("", detail))
            else:
                self._nested_completeness(
                    sub,
                    spine_properties[name],
                    f"{spine_path}.properties[{name}]",
                    f"{value_path}.properties[{name}]",
                )

    # --- x-kubernetes-validations ----------------------------------------------------------

    def _rules(self, schema: Mapping[str, Any], path: str, uncorrelatable: str | None) -> None:
        rules = schema.get("x-kubernetes-validations")
        if rules is None:
            return
        if not isinstance(rules, list):
            self.add(
                f"{path}.x-kubernetes-validations", _invalid("", _go_json(rules), "must be a list of rules")
            )
            return
        for position, rule in enumerate(rules):
            where = f"{path}.x-kubernetes-validations[{position}]"
            if not isinstance(rule, Mapping):
                self.add(where, _invalid("", _go_json(rule), "must be an object"))
                continue
            source = rule.get("rule")
            message = rule.get("message")
            if not isinstance(source, str) or not source.strip():
                self.add(f"{where}.rule", _required("", "rule is not specified"))
                continue
            if isinstance(message, str) and message and not message.strip():
                self.add(f"{where}.message", _invalid("", message, "message must be non-empty if specified"))
            elif isinstance(message, str) and len(message) > 2048:
                self.add(
                    f"{where}.message",
                    _invalid(
                        "", message[:10] + "...", "message must have a maximum length of 2048 characters"
                    ),
                )
            elif isinstance(message, str) and re.search(r"[\n\r]", message.strip()):
                self.add(f"{where}.message", _invalid("", message, "message must not contain line breaks"))
            elif re.search(r"[\n\r]", source.strip()) and not (isinstance(message, str) and message.strip()):
                self.add(
                    f"{where}.message",
                    _required("", "message must be specified if rule contains line breaks"),
                )
            reason = rule.get("reason")
            if reason is not None and reason not in _REASONS:
                self.add(f"{where}.reason", _not_supported("", reason, sorted(_REASONS)))
            field_path = rule.get("fieldPath")
            if isinstance(field_path, str) and field_path:
                if not field_path.strip():
                    self.add(
                        f"{where}.fieldPath",
                        _invalid("", field_path, "fieldPath must be non-empty if specified"),
                    )
                elif _field_path(field_path.strip(), schema) is None:
                    detail = "fieldPath must be a valid path: does not refer to a valid field"
                    self.add(f"{where}.fieldPath", _invalid("", field_path, detail))
            compiled = cel.compile_expression(source)
            if compiled.error is not None:
                self.add(f"{where}.rule", _invalid("", source, compiled.error))
            elif compiled.uses_old_self and uncorrelatable is not None:
                detail = "oldSelf cannot be used on the uncorrelatable portion of the schema within "
                detail += uncorrelatable
                self.add(f"{where}.rule", _invalid("", source, detail))
            expression = rule.get("messageExpression")
            if isinstance(expression, str) and expression:
                if not expression.strip():
                    detail = "messageExpression must be non-empty if specified"
                    self.add(f"{where}.messageExpression", _required("", detail))
                else:
                    compiled_message = cel.compile_expression(expression)
                    if compiled_message.error is not None:
                        detail = f"messageExpression {compiled_message.error}"
                        self.add(f"{where}.messageExpression", _invalid("", expression, detail))


def check_structural(schema: dict[str, Any]) -> list[str]:
    """The reasons the apiserver would refuse ``schema`` as a CRD version's ``openAPIV3Schema``.

    Each entry reads ``<path>: <cause>``, where ``<path>`` starts at ``openAPIV3Schema`` (prefix it
    with ``spec.versions[i].schema.`` for the full CRD field path) and ``<cause>`` is worded like
    the apiserver's, e.g. ``openAPIV3Schema.properties[spec].type: Required value: must not be empty
    for specified object fields``. Covers structural-schema violations (missing types, arrays
    without items, types/defaults/descriptions/extensions inside ``allOf``/``anyOf``/``oneOf``/
    ``not``, fields only declared inside those, ``metadata`` restrictions, ``additionalProperties``
    at the root), the OpenAPI features CRDs do not support (``$ref``, ``uniqueItems``,
    ``additionalProperties`` next to ``properties``, ``patternProperties``, ...),
    ``x-kubernetes-list-type``/``map-type`` consistency, invalid patterns, and
    ``x-kubernetes-validations`` that do not compile or misuse ``oldSelf``/``fieldPath``/``reason``.
    Returns ``[]`` for an acceptable schema; sorted, like the apiserver sorts structural errors.
    """
    checker = _StructuralChecker()
    root: Any = schema
    if not isinstance(root, Mapping):
        checker.add("openAPIV3Schema", _required("", "schemas are required"))
    else:
        checker.node(schema, "openAPIV3Schema", "root")
    return sorted(set(checker.problems))
