"""Static reference check of CEL expressions against the declared inputs.

Neither Python CEL package type-checks against declared variable types, so the loader does two things:
this module walks the expression's tokens and resolves every ``a.b.c`` path, function and method
against the shape of ``PolicyInput`` and the policy's ``params`` (naming the unknown input or field),
and the loader then evaluates every expression against synthetic inputs to check it yields a bool.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

ShapeKind = Literal["struct", "list", "map", "scalar", "any"]


@dataclass(frozen=True)
class Shape:
    """What a name holds: a struct with known fields, a list or map of one shape, a scalar, or unknown."""

    kind: ShapeKind
    fields: Mapping[str, Shape] = field(default_factory=dict)
    item: Shape | None = None

    def element(self) -> Shape:
        """What a comprehension variable over this value holds (list items, map keys)."""
        if self.kind == "list" and self.item is not None:
            return self.item
        if self.kind in ("map", "struct"):
            return SCALAR
        return ANY


ANY = Shape("any")
SCALAR = Shape("scalar")

# The functions and methods the CEL core of the chosen package provides (checked by a unit test).
GLOBAL_FUNCTIONS = frozenset(
    {"has", "size", "int", "uint", "double", "string", "bytes", "timestamp", "duration", "dyn", "type"}
)
METHODS = frozenset(
    {"size", "contains", "startsWith", "endsWith", "matches", "all", "exists", "exists_one", "map", "filter"}
)
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
LITERALS = frozenset({"true", "false", "null", "in"})
TYPE_NAMES = frozenset({"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<string>[rRbB]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    |(?P<number>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|0[xX][0-9a-fA-F]+[uU]?|\d+[uU]?)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<other>.)
    """,
    re.VERBOSE,
)


def shape_of_model(model: type[BaseModel]) -> Shape:
    return Shape("struct", {name: _shape_of_annotation(info.annotation) for name, info in model.model_fields.items()})


def _shape_of_annotation(annotation: Any) -> Shape:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _shape_of_annotation(options[0]) if len(options) == 1 else ANY
    if origin is list:
        (item,) = get_args(annotation)
        return Shape("list", item=_shape_of_annotation(item))
    if origin is dict:
        return Shape("map", item=_shape_of_annotation(get_args(annotation)[1]))
    if origin is not None and hasattr(annotation, "__metadata__"):  # Annotated[...]
        return _shape_of_annotation(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return shape_of_model(annotation)
    return SCALAR


def shape_of_value(value: object) -> Shape:
    """The shape of a ``params`` value: its mappings become structs with exactly their keys."""
    if isinstance(value, dict):
        return Shape("struct", {str(key): shape_of_value(item) for key, item in value.items()})
    if isinstance(value, list):
        shapes = [shape_of_value(item) for item in value]
        same = bool(shapes) and all(shape == shapes[0] for shape in shapes)
        return Shape("list", item=shapes[0] if same else ANY)
    return SCALAR


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "other"
        if kind != "space":
            found.append((kind, match.group()))
    return found


def identifiers(expression: str) -> frozenset[str]:
    """The names ``expression`` uses (inputs, fields, functions), outside its string literals."""
    return frozenset(text for kind, text in _tokens(expression) if kind == "ident")


def _member(shape: Shape, name: str) -> Shape | None:
    if shape.kind == "struct":
        return shape.fields.get(name)
    if shape.kind == "map":
        return shape.item or ANY
    if shape.kind == "any":
        return ANY
    return None


def _describe(shape: Shape) -> str:
    if shape.kind == "struct":
        return "has fields: " + ", ".join(sorted(shape.fields)) if shape.fields else "has no fields"
    return f"is a {shape.kind}, not an object"


def check_references(expression: str, roots: Mapping[str, Shape]) -> list[str]:
    """Problems with the names ``expression`` uses (empty when every input, field and function is known)."""
    tokens = _tokens(expression)
    count = len(tokens)
    bound: dict[str, Shape] = {}
    for index in range(count - 4):
        # ``.exists(x, …)``: x is a comprehension variable, usable inside the macro.
        if (
            tokens[index][1] == "."
            and tokens[index + 1][1] in MACROS
            and tokens[index + 2][1] == "("
            and tokens[index + 3][0] == "ident"
            and tokens[index + 4][1] == ","
        ):
            bound[tokens[index + 3][1]] = ANY
    problems: list[str] = []
    index = 0
    while index < count:
        kind, text = tokens[index]
        after_dot = index > 0 and tokens[index - 1][1] == "."
        calls = index + 1 < count and tokens[index + 1][1] == "("
        if kind != "ident" or text in LITERALS:
            index += 1
            continue
        if after_dot:
            # A member of something the walk could not resolve (after an index or a call).
            if calls and text not in METHODS:
                problems.append(f"unknown method '{text}()'")
            index += 1
            continue
        if calls:
            if text not in GLOBAL_FUNCTIONS:
                problems.append(f"unknown function '{text}()'")
            index += 1
            continue
        shape = bound.get(text) or roots.get(text)
        if shape is None:
            if text not in TYPE_NAMES:
                problems.append(f"unknown input '{text}' (inputs: {', '.join(sorted(roots))})")
            index += 1
            continue
        path = text
        index += 1
        while index + 1 < count and tokens[index][1] == "." and tokens[index + 1][0] == "ident":
            name = tokens[index + 1][1]
            if index + 2 < count and tokens[index + 2][1] == "(":
                # A method call ends the path; the main loop checks the method's name.
                if name in MACROS and index + 3 < count and tokens[index + 3][0] == "ident":
                    bound[tokens[index + 3][1]] = shape.element()
                break
            member = _member(shape, name)
            if member is None:
                problems.append(f"unknown field '{path}.{name}' ('{path}' {_describe(shape)})")
                index += 2
                break
            shape = member
            path = f"{path}.{name}"
            index += 2
    return problems
