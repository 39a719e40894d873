"""The {{ }} template language: paths, literals, filters, types, errors, and fuzzing."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideflow.core.templating import (
    MAX_NESTING,
    TemplateError,
    contains_template,
    evaluate,
    parse_expression,
    parse_template,
    render,
    render_value,
    to_text,
)

CONTEXT: dict[str, Any] = {
    "n1": {
        "output": {"body": {"id": 7, "items": [{"name": "a"}, {"name": "b"}]}},
        "run_id": "r-1",
        "status": 200,
    },
    "trigger": {"inputs": {"user_id": "u-9", "flag": True, "count": 3, "none": None}},
    "run": {"id": "run-1"},
    "node-2": {"output": {"x-y": "dash", "0": "zero"}},
    "nodes": {"1st": {"output": "first"}},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ n1.output.body.id }}", 7),
        ("{{ trigger.inputs.user_id }}", "u-9"),
        ("{{ run.id }}", "run-1"),
        ("{{ n1.run_id }}", "r-1"),
        ("{{ n1.output.body.items[1].name }}", "b"),
        ("{{ n1.output.body.items[-1].name }}", "b"),
        ("{{ n1.output.body.items.0.name }}", "a"),
        ('{{ node-2.output["x-y"] }}', "dash"),
        ("{{ node-2.output['x-y'] }}", "dash"),
        ("{{ node-2.output.0 }}", "zero"),
        ('{{ nodes["1st"].output }}', "first"),
        ("{{ n1.output.body }}", {"id": 7, "items": [{"name": "a"}, {"name": "b"}]}),
        ("{{ n1.output.body.items }}", [{"name": "a"}, {"name": "b"}]),
        ("{{ trigger.inputs.flag }}", True),
        ("{{ trigger.inputs.none }}", None),
        ('{{ "literal" }}', "literal"),
        ("{{ 'it\\'s' }}", "it's"),
        ('{{ "tab\\there \\u00e9" }}', "tab\there \u00e9"),
        ("{{ 42 }}", 42),
        ("{{ -1.5e2 }}", -150.0),
        ("{{ true }}", True),
        ("{{ null }}", None),
        ('{{ trigger.inputs.missing | default("x") }}', "x"),
        ('{{ trigger.inputs.none | default("was null") }}', "was null"),
        ("{{ trigger.inputs.count | default(0) }}", 3),
        ("{{ n1.output.body | json }}", '{"id": 7, "items": [{"name": "a"}, {"name": "b"}]}'),
        ("{{ trigger.inputs.user_id | upper }}", "U-9"),
        ('{{ "ABC" | lower }}', "abc"),
        ('{{ "  padded " | trim }}', "padded"),
        ("{{ n1.output.body.items | length }}", 2),
        ('{{ "12" | int }}', 12),
        ('{{ "2.5" | int }}', 2),
        ('{{ "2.5" | float }}', 2.5),
        ("{{ 7 | string }}", "7"),
        ("{{ n1.output.body.items | json | length }}", 30),
        ('{{ trigger.inputs.missing | default("a") | upper }}', "A"),
        ("{{ n1.status == 200 }}", True),
        ("{{ n1.status != 200 }}", False),
        ("{{ n1.status > 100 and n1.status <= 200 }}", True),
        ("{{ trigger.inputs.flag == 1 }}", False),
        ("{{ not trigger.inputs.flag or n1.status >= 500 }}", False),
        ("{{ trigger.inputs.missing or 'fallback' }}", "fallback"),
        ("{{ 'u' in trigger.inputs.user_id }}", True),
        ("{{ 'user_id' in trigger.inputs }}", True),
        ("{{ 'z' not in trigger.inputs.user_id }}", True),
        ("{{ trigger.inputs.missing == null }}", True),
        ("{{ (n1.status == 200) | string }}", "true"),
        ("plain text", "plain text"),
        ("", ""),
        ("id={{ n1.output.body.id }}", "id=7"),
        ("{{ n1.output.body.id }}{{ n1.output.body.id }}", "77"),
        (" {{ n1.output.body.id }}", " 7"),
        ("flag={{ trigger.inputs.flag }} none={{ trigger.inputs.none }}", "flag=true none="),
        ("body={{ n1.output.body.items[0] }}", 'body={"name": "a"}'),
        ('{{ "{{" }} stays', "{{ stays"),
        ("a }} b", "a }} b"),
    ],
)
def test_render(template: str, expected: Any) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "message", "position"),
    [
        ("{{ n1.output.nope }}", "'n1.output.nope' is undefined", 3),
        ("x {{ ghost.value }}", "'ghost' is undefined", 5),
        ("{{ n1.output.body.items[5] }}", "'n1.output.body.items[5]' is undefined", 3),
        ("{{ n1.output.body.id.deeper }}", "'n1.output.body.id.deeper' is undefined", 3),
        ("{{ n1.output", "unclosed '{{'", 0),
        ("{{ }}", "empty expression", 3),
        ("{{ a b }}", "unexpected 'b'", 5),
        ("{{ a | nope }}", "unknown filter 'nope'", 7),
        ("{{ a | default }}", "filter 'default' takes 1 argument, got 0", 7),
        ("{{ a | upper(1) }}", "filter 'upper' takes 0 arguments, got 1", 7),
        ('{{ "open }}', "unterminated string", 3),
        ('{{ "bad \\q" }}', "invalid escape sequence in string", 8),
        ("{{ a[1.5] }}", "expected a quoted key or an integer index but found 1.5", 5),
        ("{{ a. }}", "expected a key after '.' but found end of expression", 6),
        ("{{ a.-1 }}", "unexpected character '-'", 5),
        ("{{ a ! b }}", "unexpected character '!'", 5),
        ("{{ 1e999 }}", "number '1e999' is out of range", 3),
        ("{{ (a }}", "expected ')' but found end of expression", 6),
        ("{{ n1.status < 'x' }}", "cannot compare number < string", 13),
        ("{{ 1 in 5 }}", "'in' needs a string, list or object on the right, not number", 5),
        ("{{ 1 in 'abc' }}", "'in' with a string on the right needs a string on the left, not number", 5),
        ("{{ n1.output.body | json | int }}", "filter 'int' failed", 27),
        ("{{ n1.status | length }}", "filter 'length' failed: cannot take the length of number", 15),
        ("{{ trigger.inputs.missing | upper }}", "'trigger.inputs.missing' is undefined", 3),
        ("{{ __import__('os').system('id') }}", "unexpected '('", 13),
        ("{{ n1.__class__ }}", "'n1.__class__' is undefined", 3),
    ],
)
def test_errors_name_the_problem_and_its_position(template: str, message: str, position: int) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, CONTEXT)
    assert message in caught.value.message
    assert caught.value.position == position
    assert caught.value.source == template
    assert str(caught.value).startswith(caught.value.message)


def test_nesting_is_bounded() -> None:
    deep = "{{ " + "(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1) + " }}"
    with pytest.raises(TemplateError, match=f"nested deeper than {MAX_NESTING}"):
        parse_template(deep)
    assert render("{{ " + "(" * MAX_NESTING + "1" + ")" * MAX_NESTING + " }}", {}) == 1
    with pytest.raises(TemplateError, match="nested deeper"):
        parse_template("{{ " + "not " * (MAX_NESTING + 1) + "true }}")


def test_single_expressions_keep_their_type_and_mixed_text_is_a_string() -> None:
    assert parse_template("{{ a }}").is_single_expression
    assert not parse_template(" {{ a }}").is_single_expression
    assert not parse_template("text").is_single_expression
    assert render("{{ a }}", {"a": {"k": [1]}}) == {"k": [1]}
    assert render("{{ a }}!", {"a": {"k": [1]}}) == '{"k": [1]}!'


def test_lookups_never_touch_python_attributes() -> None:
    class Spy:
        touched = False

        def __getattr__(self, name: str) -> Any:
            Spy.touched = True
            raise AttributeError(name)

    with pytest.raises(TemplateError, match="undefined"):
        render("{{ spy.secret }}", {"spy": Spy()})
    with pytest.raises(TemplateError, match="undefined"):
        render("{{ text.upper }}", {"text": "abc"})
    assert not Spy.touched


def test_references() -> None:
    template = parse_template('{{ n1.output.x | default(trigger.inputs.y) }} {{ nodes["2"].z }}')
    assert [(ref.root, ref.segments, ref.position) for ref in template.references()] == [
        ("n1", ("output", "x"), 3),
        ("trigger", ("inputs", "y"), 25),
        ("nodes", ("2", "z"), 49),
    ]
    assert [str(ref) for ref in parse_expression('a.b[0]["c d"]').references()] == ['a.b[0]["c d"]']


def test_bare_expressions() -> None:
    assert evaluate("n1.status == 200 and trigger.inputs.flag", CONTEXT) is True
    assert evaluate(" {{ n1.status }} ", CONTEXT) == 200
    assert parse_expression("trigger.inputs.gone").evaluate(CONTEXT, missing="MISSING") == "MISSING"
    assert evaluate("trigger.inputs.gone", CONTEXT) is None
    with pytest.raises(TemplateError, match="expected one expression"):
        parse_expression("{{ a }} == {{ b }}")
    with pytest.raises(TemplateError, match=r"unexpected character '\{'"):
        parse_expression("a == {{ b }}")


def test_render_value_walks_structures_and_names_the_field() -> None:
    value = {"url": "https://x/{{ n1.output.body.id }}", "list": ["{{ run.id }}", 3], "keep": {"{{k}}": 1}}
    assert render_value(value, CONTEXT) == {"url": "https://x/7", "list": ["run-1", 3], "keep": {"{{k}}": 1}}
    with pytest.raises(TemplateError, match=r'^config\.headers\["X-Key"\]: .* is undefined'):
        render_value({"headers": {"X-Key": "{{ nope }}"}}, CONTEXT, "config")
    with pytest.raises(TemplateError, match=r"^config\.list\[1\]: "):
        render_value({"list": ["ok", "{{ nope }}"]}, CONTEXT, "config")


def test_contains_template_and_to_text() -> None:
    assert contains_template({"a": [1, {"b": "x {{ y }}"}]})
    assert not contains_template({"a": [1, {"b": "x { y }"}], "c": None})
    assert [to_text(value) for value in ("s", None, True, False, 3, 2.5, [1], {"a": None})] == [
        "s",
        "",
        "true",
        "false",
        "3",
        "2.5",
        "[1]",
        '{"a": null}',
    ]


def test_parses_are_cached() -> None:
    assert parse_template("{{ cached.value }}") is parse_template("{{ cached.value }}")


# --- fuzzing ---------------------------------------------------------------------------------------------

_FRAGMENTS = [
    "{{",
    "}}",
    "{",
    "}",
    " ",
    "a",
    "n1",
    "trigger",
    "inputs",
    ".",
    "[",
    "]",
    "(",
    ")",
    ",",
    "|",
    "0",
    "-1",
    "1.5",
    "1e9",
    "'",
    '"',
    "\\",
    "\\u00e9",
    "x-y",
    "not",
    "and",
    "or",
    "in",
    "true",
    "null",
    "==",
    "!=",
    "<",
    ">=",
    "default",
    "json",
    "upper",
    "lower",
    "length",
    "int",
    "join",
    "__class__",
    "__import__",
    "\n",
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)
CONTEXTS = st.fixed_dictionaries(
    {
        "a": JSON,
        "n1": JSON,
        "trigger": st.fixed_dictionaries({"inputs": st.dictionaries(st.text(max_size=3), JSON)}),
    }
)


def _render_or_template_error(template: str, context: dict[str, Any]) -> None:
    """Any other exception fails the test; a TemplateError must point inside the template."""
    try:
        result = render(template, context)
    except TemplateError as exc:
        error: TemplateError | None = exc
    else:
        error = None
        if not parse_template(template).is_single_expression:
            assert isinstance(result, str)
    if error is not None:
        assert error.position is None or 0 <= error.position <= len(template)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60), CONTEXTS)
def test_fuzz_any_text_renders_or_raises_template_error(template: str, context: dict[str, Any]) -> None:
    _render_or_template_error(template, context)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=25).map("".join), CONTEXTS)
def test_fuzz_token_soup_renders_or_raises_template_error(template: str, context: dict[str, Any]) -> None:
    _render_or_template_error(template, context)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS[4:]), max_size=20).map("".join), CONTEXTS)
def test_fuzz_bare_expressions_evaluate_or_raise_template_error(text: str, context: dict[str, Any]) -> None:
    with contextlib.suppress(TemplateError):
        parse_expression(text).evaluate(context)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_fuzz_any_value_round_trips_through_a_single_expression(value: Any) -> None:
    assert render("{{ a }}", {"a": value}) == value
    assert json.loads(render("{{ a | json }}", {"a": value})) == value


def test_references_reach_into_every_kind_of_expression() -> None:
    expression = parse_expression("not a.x and (b < c or d in e) | default(f)")
    assert [ref.root for ref in expression.references()] == ["a", "b", "c", "d", "e", "f"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ a | default(1, 2) }}", "filter 'default' takes 1 argument, got 2"),
        ('{{ a | join(",", "") }}', "filter 'join' takes 0 to 1 arguments, got 2"),
        ("{{ null < 1 }}", "cannot compare null < number"),
        ("{{ true > {{ }}", "unexpected character '{'"),
        ("{{ n1 < 'x' }}", "cannot compare object < string"),
        ("{{ n1 | float }}", "filter 'float' failed: cannot convert object to a number"),
        ("{{ n1 | int }}", "filter 'int' failed: cannot convert object to an integer"),
        ("{{ 'abc' | join }}", "filter 'join' failed: can only join a list, not string"),
    ],
)
def test_more_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, {"a": 1, "n1": {}})
    assert caught.value.message.startswith(message)


def test_scalar_conversions_and_comparisons() -> None:
    assert render("{{ false }}", {}) is False
    assert render("{{ 1 < 2 }}", {}) is True
    assert render("{{ true | int }} {{ 2.7 | int }} {{ true | float }}", {}) == "1 2 1.0"
    assert render('{{ items | join(" / ") }}', {"items": ["a", 1, None, True]}) == "a / 1 /  / true"


def test_values_that_are_not_json_render_as_text() -> None:
    class Point:
        def __str__(self) -> str:
            return "point"

    assert render("at {{ p }}", {"p": Point()}) == "at point"
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TemplateError, match="cannot render value as text"):
        render("x {{ a }}", {"a": loop})
