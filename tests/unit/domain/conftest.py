"""Domain tests: the repository on moto (tables from template.yaml), fakes for every other port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fakes import World, world


@pytest.fixture
def env() -> Iterator[World]:
    with world() as built:
        yield built


@pytest.fixture
def threaded_env() -> Iterator[World]:
    """For tests with threads: each DynamoDB request is applied atomically, as the service does."""
    with world(serialized=True) as built:
        yield built
