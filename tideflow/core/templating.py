"""The ``{{ }}`` expression language used in node configuration, input mappings and conditions.

A template is text with embedded expressions: ``"Hello {{ trigger.inputs.name | default("you") }}"``.
Expressions are a deliberately small language, parsed by the hand-written tokenizer and
recursive-descent parser below and evaluated by walking the resulting tree. There is no ``eval``,
no attribute access on Python objects (lookups only index dicts and lists) and no function calls
other than a fixed set of filters, so a template can read data but never run code (design
invariant 5).

Grammar (``docs/nodes.md`` has the user-facing reference)::

    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := filtered (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") filtered)?
    filtered   := primary ("|" NAME ("(" [expression ("," expression)*] ")")?)*
    primary    := STRING | NUMBER | "true" | "false" | "null" | "(" expression ")" | path
    path       := NAME ("." (NAME | INTEGER) | "[" (STRING | INTEGER) "]")*

Names may contain ``-`` (``node-1.output``) because the language has no subtraction. A template
that is exactly one ``{{ expression }}`` evaluates to the expression's value with its type kept;
any other template renders to a string. A path that does not resolve is *undefined*: ``default``
replaces it, comparisons see it as ``null``, and anywhere else it is a :class:`TemplateError`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "RESERVED_NAMES",
    "Expression",
    "Reference",
    "Template",
    "TemplateError",
    "contains_template",
    "evaluate",
    "parse_expression",
    "parse_template",
    "render",
    "render_value",
    "to_text",
    "values_equal",
]

RESERVED_NAMES: Final = frozenset({"trigger", "run", "input", "nodes"})
"""Names every scope binds besides the node ids (no node may be called one of them, except that a trigger
node may be called ``trigger``, its output being the same payload):
``trigger`` (the run's trigger payload), ``run`` (id, workflow, ...), ``input`` (the current node's
input) and ``nodes`` (every node by id, for ids that are not valid names: ``nodes["1st"].output``)."""

MAX_NESTING: Final = 32
"""Deepest nesting of parentheses, ``not`` and filter arguments an expression may use."""

_OPEN: Final = "{{"
_CLOSE: Final = "}}"
_KEYWORDS: Final = frozenset({"true", "false", "null", "and", "or", "not", "in"})
_NAME_RE: Final = re.compile(r"[A-Za-z_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?")
_NUMBER_RE: Final = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_INTEGER_RE: Final = re.compile(r"\d+")
_FIELD_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS: Final = ("==", "!=", "<=", ">=", "<", ">", ".", "[", "]", "(", ")", ",", "|")
_ESCAPES: Final = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "/": "/"}
_SOURCE_PREVIEW: Final = 80


class TemplateError(ValueError):
    """A template or expression that does not parse, or that cannot be evaluated against its data.

    ``position`` is the 0-based offset in ``source`` where the problem is; ``field`` is the
    configuration path the template came from when the caller knows it.
    """

    def __init__(
        self, message: str, *, position: int | None = None, source: str | None = None, field: str = ""
    ) -> None:
        self.message = message
        self.position = position
        self.source = source
        self.field = field
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = self.message
        if self.position is not None:
            text = f"{text} at position {self.position}"
        if self.source is not None:
            preview = (
                self.source if len(self.source) <= _SOURCE_PREVIEW else self.source[:_SOURCE_PREVIEW] + "..."
            )
            text = f"{text} in {preview!r}"
        if self.field:
            text = f"{self.field}: {text}"
        return text

    def at_field(self, field: str) -> TemplateError:
        """Return a copy of this error that names the configuration field the template came from."""
        return TemplateError(self.message, position=self.position, source=self.source, field=field)


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "name", "number", "string", "op", "end" (the closing braces or end of text)
    value: Any
    position: int


def _lex(text: str, start: int, *, in_template: bool) -> tuple[list[_Token], int]:
    """Tokenize an expression from ``start``; stop at ``}}`` (templates) or at the end of text.

    Returns the tokens (ending with an ``end`` token) and the offset just past the expression.
    """
    tokens: list[_Token] = []
    pos = start
    length = len(text)
    while True:
        while pos < length and text[pos] in " \t\r\n":
            pos += 1
        if pos >= length:
            if in_template:
                raise TemplateError("unclosed '{{'", position=start - len(_OPEN), source=text)
            tokens.append(_Token("end", None, pos))
            return tokens, pos
        char = text[pos]
        if in_template and text.startswith(_CLOSE, pos):
            tokens.append(_Token("end", None, pos))
            return tokens, pos + len(_CLOSE)
        after_dot = bool(tokens) and tokens[-1].kind == "op" and tokens[-1].value == "."
        name = _NAME_RE.match(text, pos)
        number = (_INTEGER_RE if after_dot else _NUMBER_RE).match(text, pos)
        if name is not None:
            tokens.append(_Token("name", name.group(), pos))
            pos = name.end()
        elif number is not None:
            tokens.append(_Token("number", _number(number.group(), pos, text), pos))
            pos = number.end()
        elif char in "\"'":
            value, end = _lex_string(text, pos)
            tokens.append(_Token("string", value, pos))
            pos = end
        else:
            for operator in _OPERATORS:
                if text.startswith(operator, pos):
                    tokens.append(_Token("op", operator, pos))
                    pos += len(operator)
                    break
            else:
                raise TemplateError(f"unexpected character {char!r}", position=pos, source=text)


def _number(literal: str, position: int, source: str) -> int | float:
    try:
        if any(marker in literal for marker in ".eE"):
            value = float(literal)
            if not math.isfinite(value):
                raise ValueError(literal)
            return value
        return int(literal)
    except ValueError:
        raise TemplateError(
            f"number {literal[:20]!r} is out of range", position=position, source=source
        ) from None


def _lex_string(text: str, start: int) -> tuple[str, int]:
    """Read the string literal whose quote is at ``start``; return its value and the offset after it."""
    quote = text[start]
    chars: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == quote:
            return "".join(chars), pos + 1
        if char == "\\":
            escape = text[pos + 1 : pos + 2]
            if escape in _ESCAPES:
                chars.append(_ESCAPES[escape])
                pos += 2
                continue
            digits = text[pos + 2 : pos + 6]
            if escape == "u" and len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
                chars.append(chr(int(digits, 16)))
                pos += 6
                continue
            raise TemplateError("invalid escape sequence in string", position=pos, source=text)
        chars.append(char)
        pos += 1
    raise TemplateError("unterminated string", position=start, source=text)


# --------------------------------------------------------------------------------------------
# Syntax tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class _Path:
    root: str
    segments: tuple[str | int, ...]
    position: int


@dataclass(frozen=True, slots=True)
class _Filter:
    operand: _Node
    name: str
    args: tuple[_Node, ...]
    position: int


@dataclass(frozen=True, slots=True)
class _Compare:
    operator: str
    left: _Node
    right: _Node
    position: int


@dataclass(frozen=True, slots=True)
class _BoolOp:
    operator: str  # "and" | "or"
    operands: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Not:
    operand: _Node


_Node = _Literal | _Path | _Filter | _Compare | _BoolOp | _Not

_COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class Reference:
    """A path an expression reads: ``root`` is its first name (a node id, ``trigger``, ...)."""

    root: str
    segments: tuple[str | int, ...]
    position: int

    def __str__(self) -> str:
        return _describe_path(self.root, self.segments)


def _describe_path(root: str, segments: Sequence[str | int]) -> str:
    text = root
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif _NAME_RE.fullmatch(segment):
            text += f".{segment}"
        else:
            text += f"[{json.dumps(segment)}]"
    return text


def _walk(node: _Node) -> Iterator[_Node]:
    yield node
    if isinstance(node, _Filter):
        yield from _walk(node.operand)
        for arg in node.args:
            yield from _walk(arg)
    elif isinstance(node, _Compare):
        yield from _walk(node.left)
        yield from _walk(node.right)
    elif isinstance(node, _BoolOp):
        for operand in node.operands:
            yield from _walk(operand)
    elif isinstance(node, _Not):
        yield from _walk(node.operand)


def _references(nodes: Sequence[_Node]) -> tuple[Reference, ...]:
    return tuple(
        Reference(item.root, item.segments, item.position)
        for node in nodes
        for item in _walk(node)
        if isinstance(item, _Path)
    )


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over one expression's tokens; ``depth`` bounds the recursion."""

    def __init__(self, tokens: list[_Token], source: str) -> None:
        self.tokens = tokens
        self.source = source
        self.index = 0
        self.depth = 0

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise self.error("empty expression", self.peek())
        node = self.parse_or()
        token = self.peek()
        if token.kind != "end":
            raise self.error(f"unexpected {_describe_token(token)}", token)
        return node

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def error(self, message: str, token: _Token) -> TemplateError:
        return TemplateError(message, position=token.position, source=self.source)

    def is_op(self, value: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind == "op" and token.value == value

    def is_keyword(self, value: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind == "name" and token.value == value

    def expect_op(self, value: str) -> _Token:
        token = self.advance()
        if token.kind != "op" or token.value != value:
            raise self.error(f"expected {value!r} but found {_describe_token(token)}", token)
        return token

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"expression nested deeper than {MAX_NESTING} levels", token)

    def parse_or(self) -> _Node:
        return self._parse_bool("or", self.parse_and)

    def parse_and(self) -> _Node:
        return self._parse_bool("and", self.parse_not)

    def _parse_bool(self, keyword: str, operand: Callable[[], _Node]) -> _Node:
        operands = [operand()]
        while self.is_keyword(keyword):
            self.advance()
            operands.append(operand())
        return operands[0] if len(operands) == 1 else _BoolOp(keyword, tuple(operands))

    def parse_not(self) -> _Node:
        if self.is_keyword("not"):
            self.enter(self.advance())
            operand = self.parse_not()
            self.depth -= 1
            return _Not(operand)
        return self.parse_comparison()

    def parse_comparison(self) -> _Node:
        left = self.parse_filtered()
        token = self.peek()
        if token.kind == "op" and token.value in _COMPARISONS:
            operator = token.value
            self.advance()
        elif self.is_keyword("in"):
            operator = "in"
            self.advance()
        elif self.is_keyword("not") and self.is_keyword("in", 1):
            operator = "not in"
            self.advance()
            self.advance()
        else:
            return left
        return _Compare(operator, left, self.parse_filtered(), token.position)

    def parse_filtered(self) -> _Node:
        node = self.parse_primary()
        while self.is_op("|"):
            self.advance()
            name = self.advance()
            if name.kind != "name" or name.value not in _FILTERS:
                raise self.error(
                    f"unknown filter {_describe_token(name)}; filters are {', '.join(sorted(_FILTERS))}", name
                )
            args: list[_Node] = []
            if self.is_op("("):
                self.enter(self.advance())
                while not self.is_op(")"):
                    if args:
                        self.expect_op(",")
                    args.append(self.parse_or())
                self.advance()
                self.depth -= 1
            spec = _FILTERS[name.value]
            if not spec.min_args <= len(args) <= spec.max_args:
                raise self.error(f"filter '{name.value}' takes {spec.arity}, got {len(args)}", name)
            node = _Filter(node, name.value, tuple(args), name.position)
        return node

    def parse_primary(self) -> _Node:
        token = self.advance()
        if token.kind in ("string", "number"):
            return _Literal(token.value)
        if token.kind == "op" and token.value == "(":
            self.enter(token)
            node = self.parse_or()
            self.expect_op(")")
            self.depth -= 1
            return node
        if token.kind == "name":
            if token.value == "true":
                return _Literal(True)
            if token.value == "false":
                return _Literal(False)
            if token.value == "null":
                return _Literal(None)
            if token.value not in _KEYWORDS:
                return self.parse_path(token)
        raise self.error(f"unexpected {_describe_token(token)}", token)

    def parse_path(self, root: _Token) -> _Path:
        segments: list[str | int] = []
        while True:
            if self.is_op("."):
                self.advance()
                key = self.advance()
                if key.kind == "name" or (key.kind == "number" and isinstance(key.value, int)):
                    segments.append(key.value)
                else:
                    raise self.error(f"expected a key after '.' but found {_describe_token(key)}", key)
            elif self.is_op("["):
                self.advance()
                key = self.advance()
                if key.kind == "string" or (key.kind == "number" and isinstance(key.value, int)):
                    segments.append(key.value)
                else:
                    raise self.error(
                        f"expected a quoted key or an integer index but found {_describe_token(key)}", key
                    )
                self.expect_op("]")
            else:
                return _Path(root.value, tuple(segments), root.position)


def _describe_token(token: _Token) -> str:
    if token.kind == "end":
        return "end of expression"
    if token.kind == "string":
        return f"string {json.dumps(token.value)[:40]}"
    return f"{token.value!r}"


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Undefined:
    """The value of a path that does not resolve; carries what to say if it is used."""

    description: str
    position: int


def _lookup(path: _Path, context: Mapping[str, Any]) -> Any:
    if path.root not in context:
        return _Undefined(path.root, path.position)
    current: Any = context[path.root]
    for index, segment in enumerate(path.segments):
        if isinstance(current, Mapping):
            key = segment if isinstance(segment, str) else str(segment)
            if key in current:
                current = current[key]
                continue
        elif (
            isinstance(current, list | tuple)
            and isinstance(segment, int)
            and -len(current) <= segment < len(current)
        ):
            current = current[segment]
            continue
        return _Undefined(_describe_path(path.root, path.segments[: index + 1]), path.position)
    return current


def _evaluate(node: _Node, context: Mapping[str, Any], source: str) -> Any:
    """Evaluate a syntax tree; the result may be :class:`_Undefined`."""
    if isinstance(node, _Path):
        return _lookup(node, context)
    if isinstance(node, _Literal):
        return node.value
    if isinstance(node, _Filter):
        operand = _evaluate(node.operand, context, source)
        args = [_defined(_evaluate(arg, context, source), source) for arg in node.args]
        return _apply_filter(node, operand, args, source)
    if isinstance(node, _Compare):
        left = _evaluate(node.left, context, source)
        right = _evaluate(node.right, context, source)
        return _compare(node, _or_none(left), _or_none(right), source)
    if isinstance(node, _Not):
        return not _truthy(_evaluate(node.operand, context, source))
    result: Any = None
    for operand in node.operands:
        result = _or_none(_evaluate(operand, context, source))
        if _truthy(result) == (node.operator == "or"):
            return result
    return result


def _or_none(value: Any) -> Any:
    return None if isinstance(value, _Undefined) else value


def _truthy(value: Any) -> bool:
    return not isinstance(value, _Undefined) and bool(value)


def _defined(value: Any, source: str) -> Any:
    if isinstance(value, _Undefined):
        raise TemplateError(f"{value.description!r} is undefined", position=value.position, source=source)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def values_equal(left: Any, right: Any) -> bool:
    """Equality as ``==`` means it in expressions: a boolean never equals a number (JSON semantics)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return bool(left == right)


def _compare(node: _Compare, left: Any, right: Any, source: str) -> bool:
    operator = node.operator
    if operator == "==":
        return values_equal(left, right)
    if operator == "!=":
        return not values_equal(left, right)
    if operator in ("in", "not in"):
        if isinstance(right, str):
            if not isinstance(left, str):
                raise TemplateError(
                    f"'{operator}' with a string on the right needs a string on the left, "
                    f"not {_type_name(left)}",
                    position=node.position,
                    source=source,
                )
            found = left in right
        elif isinstance(right, Mapping):
            found = isinstance(left, str) and left in right
        elif isinstance(right, list | tuple):
            found = any(values_equal(left, item) for item in right)
        else:
            raise TemplateError(
                f"'{operator}' needs a string, list or object on the right, not {_type_name(right)}",
                position=node.position,
                source=source,
            )
        return found if operator == "in" else not found
    if not ((_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))):
        raise TemplateError(
            f"cannot compare {_type_name(left)} {operator} {_type_name(right)}",
            position=node.position,
            source=source,
        )
    if operator == "<":
        return bool(left < right)
    if operator == "<=":
        return bool(left <= right)
    if operator == ">":
        return bool(left > right)
    return bool(left >= right)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def to_text(value: Any) -> str:
    """Render a value the way a template inserts it into text (JSON spelling for non-strings)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping | list | tuple):
        return _dump_json(value)
    return str(value)


def _dump_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FilterSpec:
    function: Callable[..., Any]
    min_args: int
    max_args: int

    @property
    def arity(self) -> str:
        if self.min_args == self.max_args:
            return f"{self.min_args} argument{'s' if self.min_args != 1 else ''}"
        return f"{self.min_args} to {self.max_args} arguments"


def _filter_default(value: Any, fallback: Any) -> Any:
    return fallback if value is None or isinstance(value, _Undefined) else value


def _filter_length(value: Any) -> int:
    if isinstance(value, str | Mapping | list | tuple):
        return len(value)
    raise TypeError(f"cannot take the length of {_type_name(value)}")


def _filter_int(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return int(float(text))
    if isinstance(value, bool | int | float):
        return int(value)
    raise TypeError(f"cannot convert {_type_name(value)} to an integer")


def _filter_float(value: Any) -> float:
    if isinstance(value, str | bool | int | float):
        return float(value)
    raise TypeError(f"cannot convert {_type_name(value)} to a number")


def _filter_join(value: Any, separator: Any = ",") -> str:
    if not isinstance(value, list | tuple):
        raise TypeError(f"can only join a list, not {_type_name(value)}")
    return to_text(separator).join(to_text(item) for item in value)


_FILTERS: Final[dict[str, _FilterSpec]] = {
    "default": _FilterSpec(_filter_default, 1, 1),
    "json": _FilterSpec(_dump_json, 0, 0),
    "upper": _FilterSpec(lambda value: to_text(value).upper(), 0, 0),
    "lower": _FilterSpec(lambda value: to_text(value).lower(), 0, 0),
    "trim": _FilterSpec(lambda value: to_text(value).strip(), 0, 0),
    "string": _FilterSpec(to_text, 0, 0),
    "length": _FilterSpec(_filter_length, 0, 0),
    "int": _FilterSpec(_filter_int, 0, 0),
    "float": _FilterSpec(_filter_float, 0, 0),
    "join": _FilterSpec(_filter_join, 0, 1),
}


def _apply_filter(node: _Filter, operand: Any, args: list[Any], source: str) -> Any:
    if node.name != "default":
        operand = _defined(operand, source)
    try:
        return _FILTERS[node.name].function(operand, *args)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise TemplateError(
            f"filter '{node.name}' failed: {exc}", position=node.position, source=source
        ) from None


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


class Template:
    """A parsed template: literal text and expressions. Immutable, so parses are cached and shared."""

    __slots__ = ("_parts", "_single", "source")

    def __init__(self, source: str, parts: tuple[str | _Node, ...]) -> None:
        self.source = source
        self._parts = parts
        only = parts[0] if len(parts) == 1 else None
        self._single = None if isinstance(only, str) else only

    @property
    def is_single_expression(self) -> bool:
        """True when the template is exactly one ``{{ }}``: rendering keeps the value's type."""
        return self._single is not None

    def references(self) -> tuple[Reference, ...]:
        return _references([part for part in self._parts if not isinstance(part, str)])

    def render(self, context: Mapping[str, Any]) -> Any:
        """Evaluate against ``context``; raise :class:`TemplateError` if a value used is undefined."""
        if self._single is not None:
            return _defined(_evaluate(self._single, context, self.source), self.source)
        pieces: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                pieces.append(part)
            else:
                value = _defined(_evaluate(part, context, self.source), self.source)
                try:
                    pieces.append(to_text(value))
                except (TypeError, ValueError, RecursionError) as exc:
                    raise TemplateError(f"cannot render value as text: {exc}", source=self.source) from None
        return "".join(pieces)


class Expression:
    """A parsed bare expression (no braces), such as a condition's ``n1.status == 200``."""

    __slots__ = ("_node", "source")

    def __init__(self, source: str, node: _Node) -> None:
        self.source = source
        self._node = node

    def references(self) -> tuple[Reference, ...]:
        return _references([self._node])

    def evaluate(self, context: Mapping[str, Any], *, missing: Any = None) -> Any:
        """Evaluate against ``context``; an undefined result is returned as ``missing``."""
        value = _evaluate(self._node, context, self.source)
        return missing if isinstance(value, _Undefined) else value


@functools.lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Parse template text; raise :class:`TemplateError` with the position of the first problem."""
    parts: list[str | _Node] = []
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            if pos < len(text):
                parts.append(text[pos:])
            return Template(text, tuple(parts))
        if start > pos:
            parts.append(text[pos:start])
        tokens, pos = _lex(text, start + len(_OPEN), in_template=True)
        parts.append(_Parser(tokens, text).parse())


@functools.lru_cache(maxsize=4096)
def parse_expression(text: str) -> Expression:
    """Parse a bare expression; one expression wrapped in ``{{ }}`` (with spaces around) is accepted too."""
    if text.lstrip().startswith(_OPEN):
        template = parse_template(text)
        nodes = [part for part in template._parts if not isinstance(part, str) or part.strip()]
        if len(nodes) == 1 and not isinstance(nodes[0], str):
            return Expression(text, nodes[0])
        raise TemplateError(
            "expected one expression: write it bare or inside a single '{{ }}'", position=0, source=text
        )
    tokens, _ = _lex(text, 0, in_template=False)
    return Expression(text, _Parser(tokens, text).parse())


def contains_template(value: Any) -> bool:
    """Whether a configuration value (string, or dicts and lists of them) contains any ``{{``."""
    if isinstance(value, str):
        return _OPEN in value
    if isinstance(value, Mapping):
        return any(contains_template(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(contains_template(item) for item in value)
    return False


def render(text: str, context: Mapping[str, Any]) -> Any:
    """Parse (cached) and render one template string."""
    return parse_template(text).render(context)


def render_value(value: Any, context: Mapping[str, Any], field: str = "") -> Any:
    """Render every string inside ``value`` (dicts and lists are walked; keys are not templates).

    Errors name the field path below ``field``, e.g. ``config.headers.Authorization``.
    """
    if isinstance(value, str):
        if _OPEN not in value:
            return value
        try:
            return parse_template(value).render(context)
        except TemplateError as exc:
            raise exc.at_field(field) from None
    if isinstance(value, Mapping):
        return {key: render_value(item, context, _join_field(field, key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(item, context, f"{field}[{index}]") for index, item in enumerate(value)]
    return value


def _join_field(field: str, key: Any) -> str:
    key = str(key)
    if _FIELD_KEY_RE.fullmatch(key):
        return f"{field}.{key}" if field else key
    return f"{field}[{json.dumps(key)}]"


def evaluate(text: str, context: Mapping[str, Any]) -> Any:
    """Parse (cached) and evaluate a bare expression; undefined evaluates to ``None``."""
    return parse_expression(text).evaluate(context)
