"""Every GraphQL operation the project sends is valid against Stash's real schema."""

from __future__ import annotations

import re
from pathlib import Path

import graphql
import pytest

from tagger.stashside import stash


def load_schema(shared_dir: Path) -> graphql.GraphQLSchema:
    folder = shared_dir / "stash-schema"
    sources = [p.read_text() for p in sorted((folder / "types").glob("*.graphql"))]
    sources.append((folder / "schema.graphql").read_text())
    return graphql.build_schema("\n".join(sources))


@pytest.fixture(scope="module")
def schema(shared_dir: Path) -> graphql.GraphQLSchema:
    return load_schema(shared_dir)


@pytest.mark.parametrize("name", sorted(stash.OPERATIONS))
def test_operation_is_valid_against_stash_schema(schema: graphql.GraphQLSchema, name: str) -> None:
    operation = stash.OPERATIONS[name]
    document = graphql.parse(operation.document)
    errors = graphql.validate(schema, document)
    assert not errors, [error.message for error in errors]
    names = [d.name.value for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]
    assert names == [operation.name]


OPERATION_PATTERN = re.compile(r"\b(query|mutation)\s+[A-Z]\w*\s*[({]")


def test_python_sends_graphql_only_from_the_stash_module() -> None:
    root = Path(stash.__file__).parents[1]  # all of tagger/
    offenders = [str(path.relative_to(root)) for path in root.rglob("*.py")
                 if path.name != "stash.py" and OPERATION_PATTERN.search(path.read_text())]
    assert offenders == []


def test_every_operation_in_the_ui_is_valid_against_stash_schema(schema: graphql.GraphQLSchema) -> None:
    ui = Path(stash.__file__).parents[2] / "ui"
    documents = [text for path in ui.glob("*.js") for text in re.findall(r"`([^`]*)`", path.read_text())
                 if OPERATION_PATTERN.search(text)]
    assert documents, "the UI sends at least the RunPluginTask mutation"
    for document in documents:
        assert not graphql.validate(schema, graphql.parse(document))


def test_client_refuses_to_send_an_unregistered_operation() -> None:
    rogue = object.__new__(stash.Operation)
    object.__setattr__(rogue, "name", "Rogue")
    object.__setattr__(rogue, "document", "query Rogue { version { version } }")
    object.__setattr__(rogue, "idempotent", True)
    with pytest.raises(ValueError, match="not registered"):
        stash.StashClient("http://127.0.0.1:1").execute(rogue)


def test_graphql_errors_name_the_operation_and_stashs_message() -> None:
    from tagger.errors import GraphQLError
    from tests.stash_server import StashTestServer

    with StashTestServer() as server:
        client = stash.StashClient(server.url)
        with pytest.raises(GraphQLError) as raised:
            client.execute(stash.FIND_SCENES, {"scene_filter": {"no_such_filter": True}})
    assert str(raised.value).startswith("Stash rejected FindScenes: ")
    assert "no_such_filter" in str(raised.value)


def test_api_key_is_taken_from_stash_only_when_set() -> None:
    from tests.stash_server import StashTestServer

    with StashTestServer() as server:
        client = stash.StashClient(server.url)
        assert client.use_api_key_if_set() is False and client.auth_headers == {}
