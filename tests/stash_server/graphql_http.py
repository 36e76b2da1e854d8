"""Turn one GraphQL POST body into (HTTP status, JSON payload), the way gqlgen answers.

gqlgen (Stash's GraphQL server) answers a parse error or a validation error (including bad
variables and an unknown operation name) with HTTP 422, ``data: null`` and
``extensions.code`` GRAPHQL_PARSE_FAILED / GRAPHQL_VALIDATION_FAILED; resolver errors come
back with HTTP 200 next to the partial data, each with a ``path``. Messages use gqlgen's
double quotes rather than graphql-core's single quotes.
"""

from __future__ import annotations

import threading
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from .state import RequestContext

Payload = dict[str, Any]
"""A JSON response body."""


def _error(err: GraphQLError, code: str | None = None) -> Payload:
    """Format one error like gqlgen (locations for request errors, path for field errors)."""
    message = err.message
    if code:  # request errors: gqlgen words them with double quotes and no prefix
        message = message.removeprefix("Syntax Error: ").replace("'", '"')
    out: Payload = {"message": message}
    if err.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in err.locations]
    if err.path:
        out["path"] = list(err.path)
        out.pop("locations", None)
    if code:
        out["extensions"] = {"code": code}
    return out


def _reject(errors: list[GraphQLError], code: str) -> tuple[int, Payload]:
    """A 422 answer for errors found before execution."""
    return 422, {"errors": [_error(e, code) for e in errors], "data": None}


def run_graphql(
    schema: GraphQLSchema, body: Payload, context: RequestContext, lock: threading.RLock
) -> tuple[int, Payload]:
    """Parse, validate and execute one request body.

    Returns:
        The HTTP status and the JSON payload to send.
    """
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        return 422, {"errors": [{"message": "no operation provided",
                                 "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}],
                     "data": None}
    try:
        document = parse(query)
    except GraphQLError as err:
        return _reject([err], "GRAPHQL_PARSE_FAILED")
    errors = validate(schema, document)
    if errors:
        return _reject(errors, "GRAPHQL_VALIDATION_FAILED")
    op_name = body.get("operationName") or None
    operation = get_operation_ast(document, op_name)
    if operation is None:
        return _reject([GraphQLError(f'operation {op_name or ""} not found')],
                       "GRAPHQL_VALIDATION_FAILED")
    variables = body.get("variables") or {}
    coerced = _coerce_variables(schema, operation, variables)
    if coerced:
        return _reject(coerced, "GRAPHQL_VALIDATION_FAILED")
    with lock:
        result = execute(schema, document, context_value=context, variable_values=variables,
                         operation_name=op_name)
    payload: Payload = {"data": result.data}
    if result.errors:
        payload = {"errors": [_error(e) for e in result.errors], "data": result.data}
    return 200, payload


def _coerce_variables(
    schema: GraphQLSchema, operation: OperationDefinitionNode, variables: Any
) -> list[GraphQLError]:
    """Return the variable coercion errors graphql-core finds (empty when all is well)."""
    if not isinstance(variables, dict):
        return [GraphQLError("variables must be an object")]
    result = get_variable_values(schema, operation.variable_definitions, variables)
    return result if isinstance(result, list) else []
