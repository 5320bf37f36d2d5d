"""Braintree's published GraphQL schema (``braintree-schema.graphql``) as a validator for tests.

A request is valid when its document validates against the schema and its variables coerce to the operation's
variable types (``Amount`` values must also be strings: the scalar is a decimal string). An answer is valid when
executing the document against the schema, with the answer's ``data`` as the root value, gives the same data
without errors: every enum value, non-null field, list and ``__typename`` the sandbox answered is the schema's.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from graphql import ExecutionResult, GraphQLSchema, build_schema, execute, parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import FieldNode, OperationDefinitionNode

from tests.conftest import CONTRACTS
from tests.contract.conftest import require_contracts

SCHEMA = "braintree-schema.graphql"


def contracts() -> Path:
    """The specs' folder; skips outside CI when the schema is missing, fails in CI."""
    return require_contracts(CONTRACTS, os.environ, SCHEMA)


@cache
def schema() -> GraphQLSchema:
    built = build_schema((contracts() / SCHEMA).read_text(encoding="utf-8"))
    # The published schema breaks one of graphql-core's schema rules (deprecated fields of InStoreContext that
    # implement non-deprecated interface fields), which has nothing to do with the documents checked here.
    built._validation_errors = []
    return built


def _amounts(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        found = [
            f"{path}.amount is not a string"
            for key, item in value.items()
            if key == "amount" and not isinstance(item, str)
        ]
        return found + [error for key, item in value.items() for error in _amounts(item, f"{path}.{key}")]
    return []


def request_errors(body: dict[str, Any]) -> list[str]:
    """What is wrong with a GraphQL request body ``{query, variables}`` for Braintree's schema."""
    document = parse(body["query"])
    errors = [error.message for error in validate(schema(), document)]
    operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
    if len(operations) != 1:
        return [*errors, f"{len(operations)} operations"]
    definitions = operations[0].variable_definitions or ()
    coerced = get_variable_values(schema(), definitions, body.get("variables") or {})
    if isinstance(coerced, list):
        errors += [error.message for error in coerced]
    return errors + _amounts(body.get("variables") or {})


def answer_errors(body: dict[str, Any], answer: dict[str, Any]) -> list[str]:
    """What in a sandbox answer the schema would not produce for that request."""
    data = answer.get("data")
    if data is None:
        return [] if answer.get("errors") else ["neither data nor errors"]
    document = parse(body["query"])
    result = execute(schema(), document, root_value=data, variable_values=body.get("variables") or {})
    assert isinstance(result, ExecutionResult)  # no resolver here is asynchronous
    errors = [error.message for error in result.errors or []]
    fields_in_error = {str(error["path"][0]) for error in answer.get("errors") or [] if error.get("path")}
    expected = {key: value for key, value in data.items() if key not in fields_in_error}
    produced = {key: value for key, value in (result.data or {}).items() if key not in fields_in_error}
    if produced != expected:
        errors.append(f"the schema gives {produced!r}, the sandbox answered {expected!r}")
    return errors


def root_field(body: dict[str, Any]) -> str:
    """The first root field a request asks for (``node``, ``refundTransaction``...)."""
    (operation,) = [node for node in parse(body["query"]).definitions if isinstance(node, OperationDefinitionNode)]
    first = operation.selection_set.selections[0]
    assert isinstance(first, FieldNode)
    return first.name.value
