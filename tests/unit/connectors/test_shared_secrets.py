"""The help desks' shared secrets: one check for all of them."""

from __future__ import annotations

from typing import Any

import pytest

from refundflow.connectors.shared_secrets import MIN_SHARED_SECRET_LENGTH, one_of

CURRENT = "c" * MIN_SHARED_SECRET_LENGTH
PREVIOUS = "p" * (MIN_SHARED_SECRET_LENGTH + 8)


@pytest.mark.parametrize("sent", [CURRENT, PREVIOUS])
def test_any_configured_secret_matches_while_one_replaces_another(sent: str) -> None:
    assert one_of(sent, [CURRENT, PREVIOUS])


@pytest.mark.parametrize(
    ("sent", "configured"),
    [
        (CURRENT[:-1], [CURRENT]),  # a prefix is not the secret
        ("short", ["short"]),  # too short to be a secret: a mistake, never a match
        (CURRENT, CURRENT),  # not a list
        (CURRENT, None),
        (CURRENT, [123, None]),
        ("", [CURRENT]),
    ],
)
def test_nothing_else_matches(sent: str, configured: Any) -> None:
    assert not one_of(sent, configured)
