"""CEL for x-kubernetes-validations: compilation, the schema-driven value model and cel-go semantics.

Expectations follow the Kubernetes documentation of CRD validation rules (type mapping, property
name escaping, transition rules, the Kubernetes CEL libraries) and cel-go's behaviour, which the
apiserver embeds.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideflow.sandbox import cel

OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "replicas": {"type": "integer"},
        "ratio": {"type": "number"},
        "name": {"type": "string"},
        "x-y": {"type": "string"},
        "namespace": {"type": "string"},
        "startAt": {"type": "string", "format": "date-time"},
        "timeout": {"type": "string", "format": "duration"},
        "blob": {"type": "string", "format": "byte"},
        "port": {"x-kubernetes-int-or-string": True},
        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "steps": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def run(expression: str, value: Any, schema: dict[str, Any] | None = None, **extra: Any) -> Any:
    compiled = cel.compile_expression(expression)
    assert compiled.error is None, compiled.error
    activation = {"self": cel.to_cel(value, schema or OBJECT_SCHEMA), **extra}
    return cel.evaluate(compiled, activation)


def check(expression: str, value: Any, schema: dict[str, Any] | None = None) -> bool:
    result = run(expression, value, schema)
    assert cel.is_bool(result)
    return cel.is_true(result)


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("replicas", "replicas"),
        ("x-y", "x__dash__y"),
        ("a.b", "a__dot__b"),
        ("a/b", "a__slash__b"),
        ("a__b", "a__underscores__b"),
        ("namespace", "__namespace__"),
        ("in", "__in__"),
        ("1st", None),
        ("with space", None),
        ("", None),
    ],
)
def test_property_names_are_escaped_as_documented(name: str, escaped: str | None) -> None:
    assert cel.escape_property_name(name) == escaped


def test_values_follow_the_schema_types() -> None:
    value = {
        "replicas": 3,
        "ratio": 2,
        "x-y": "dash",
        "namespace": "ns",
        "startAt": "2024-05-01T10:00:00Z",
        "timeout": "1h30m",
        "blob": "aGVsbG8=",
        "port": 8080,
        "labels": {"app.kubernetes.io/name": "x"},
        "free": {"anything": 1},
    }
    assert check("type(self.replicas) == int && type(self.ratio) == double", value)
    assert check("self.x__dash__y == 'dash' && self.__namespace__ == 'ns'", value)
    assert check("self.startAt < timestamp('2025-01-01T00:00:00Z')", value)
    assert check("self.timeout > duration('1h')", value)
    assert check("self.blob == b'hello'", value)
    assert check("self.port == 8080", value)
    assert check("self.labels['app.kubernetes.io/name'] == 'x'", value)
    # fields without schema information are invisible to CEL
    assert check("!has(self.free.anything)", value)


def test_int_or_string_keeps_the_value_kind() -> None:
    assert check("type(self.port) == string", {"port": "http"})
    assert check("type(self.port) == int", {"port": 80})


def test_resource_root_exposes_only_name_and_generate_name_of_metadata() -> None:
    value = {"apiVersion": "v1", "kind": "K", "metadata": {"name": "a", "labels": {"x": "y"}}, "replicas": 1}
    self_value = cel.to_cel(value, OBJECT_SCHEMA, resource_root=True)
    compiled = cel.compile_expression(
        "self.kind == 'K' && self.metadata.name == 'a' && !has(self.metadata.labels)"
    )
    assert cel.is_true(cel.evaluate(compiled, {"self": self_value}))


def test_equality_is_heterogeneous_like_cel_go() -> None:
    assert check("self.replicas == 3.0", {"replicas": 3})
    assert check("self.replicas < 3.5", {"replicas": 3})
    assert not check("self.replicas == 'three'", {"replicas": 3})
    assert check("self.replicas in [1.0, 3.0]", {"replicas": 3})


def test_set_lists_compare_without_order_and_plain_lists_with_order() -> None:
    value = {"tags": ["a", "b"], "steps": ["a", "b"]}
    assert check("self.tags == ['b', 'a']", value)
    assert not check("self.steps == ['b', 'a']", value)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("has(self.name) && size(self.name) == 5", True),
        ("self.name.matches('^[a-z]+$')", True),
        ("self.name.matches('^\\\\p{L}+$')", True),
        ("self.steps.all(s, s.startsWith('s'))", True),
        ("self.steps.exists(s, s.endsWith('2'))", True),
        ("self.steps.exists_one(s, s.contains('1'))", True),
        ("self.steps.map(s, s.upperAscii()) == ['S1', 'S2']", True),
        ("self.steps.filter(s, s != 's1') == ['s2']", True),
        ("self.name.lowerAscii() == 'hello' && 'ÄB'.lowerAscii() == 'Äb'", True),
        ("'a,b,c'.split(',') == ['a', 'b', 'c']", True),
        ("'  x '.trim() == 'x'", True),
        ("'aXbX'.replace('X', '-') == 'a-b-'", True),
        ("self.name.indexOf('l') == 2 && self.name.lastIndexOf('l') == 3", True),
        ("self.name.substring(1, 3) == 'el' && self.name.charAt(0) == 'h'", True),
        ("self.steps.join('/') == 's1/s2'", True),
        ("[1, 2, 3].isSorted() && ![2, 1].isSorted()", True),
        ("[1, 2, 3].sum() == 6 && [3, 1, 2].min() == 1 && [3, 1, 2].max() == 3", True),
        ("self.name.find('l+') == 'll' && self.name.findAll('l') == ['l', 'l']", True),
        ("self.steps.indexOf('s2') == 1", True),
    ],
)
def test_standard_and_kubernetes_library_functions(expression: str, expected: bool) -> None:
    assert check(expression, {"name": "hello", "steps": ["s1", "s2"]}) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("self.missing == 1", "no such key: missing"),
        ("self.steps[5] == 's'", "index out of bounds: 5"),
        ("self.replicas / 0 == 1", "division by zero"),
        ("self.name.matches('(?=x)')", "invalid regular expression"),
    ],
)
def test_runtime_errors_are_worded_like_cel_go(expression: str, message: str) -> None:
    with pytest.raises(cel.CELEvaluationError) as raised:
        run(expression, {"name": "n", "steps": [], "replicas": 1})
    assert raised.value.message.startswith(message)
    assert not raised.value.no_such_overload


def test_type_mismatch_at_runtime_is_no_such_overload() -> None:
    with pytest.raises(cel.CELEvaluationError) as raised:
        run("self.port + 1 == 2", {"port": "http"})
    assert raised.value.no_such_overload


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("self.replicas ==", "Syntax error"),
        ("unknownFunction(self)", "undeclared reference to 'unknownFunction' (in container '')"),
        ("self.name.unknownMethod()", "undeclared reference to 'unknownMethod' (in container '')"),
        ("other.replicas > 1", "undeclared reference to 'other' (in container '')"),
        ("has(self['x'])", "invalid argument to has() macro"),
        ("self.steps.all(s)", "invalid argument count to all() macro"),
    ],
)
def test_compile_errors(expression: str, fragment: str) -> None:
    compiled = cel.compile_expression(expression)
    assert compiled.error is not None
    assert compiled.error.startswith("compilation failed: ERROR: <input>:")
    assert fragment in compiled.error
    with pytest.raises(cel.CELEvaluationError):
        cel.evaluate(compiled, {"self": None})


def test_transition_rules_are_detected_and_macro_variables_are_scoped() -> None:
    assert cel.compile_expression("self == oldSelf").uses_old_self
    assert not cel.compile_expression("self.steps.all(oldSelf, oldSelf != '')").error
    assert not cel.compile_expression("self.steps.all(s, s != '')").uses_old_self
    assert cel.compile_expression("self.steps.all(s, s != '') && t == 1").error is not None


def test_optional_old_self() -> None:
    compiled = cel.compile_expression("oldSelf.hasValue() ? self >= oldSelf.value() : self <= 5")
    schema = {"type": "integer"}
    absent = cel.OptionalValue(present=False)
    present = cel.OptionalValue(cel.to_cel(4, schema), present=True)
    assert cel.is_true(cel.evaluate(compiled, {"self": cel.to_cel(3, schema), "oldSelf": absent}))
    assert not cel.is_true(cel.evaluate(compiled, {"self": cel.to_cel(3, schema), "oldSelf": present}))
    orvalue = cel.compile_expression("self > oldSelf.orValue(0)")
    assert cel.is_true(cel.evaluate(orvalue, {"self": cel.to_cel(1, schema), "oldSelf": absent}))


def evaluate_or_error(compiled: cel.CompiledExpression, activation: dict[str, Any]) -> Any:
    """The result, or the CELEvaluationError (any other exception propagates and fails the test)."""
    try:
        return cel.evaluate(compiled, activation)
    except cel.CELEvaluationError as error:
        return error


@settings(max_examples=120, deadline=None)
@given(text=st.text(alphabet="self.ab()[]'\"!=<>&|+-*/%?:,0129 {}\\", max_size=24))
def test_compiling_and_evaluating_arbitrary_text_never_raises_anything_else(text: str) -> None:
    compiled = cel.compile_expression(text)
    assert compiled.error is None or compiled.error.startswith("compilation failed: ")
    if compiled.error is None:
        outcome = evaluate_or_error(compiled, {"self": cel.to_cel({"a": 1, "b": "x"}, None)})
        if isinstance(outcome, cel.CELEvaluationError):
            assert outcome.message.strip()
