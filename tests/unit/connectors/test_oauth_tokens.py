"""The shared OAuth token pieces every connector with tokens stands on: the cache, the refresh-token grant over a
stored secret (rotation, one re-read when another process rotated first) and the one retry after a 401."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from refundflow.connectors.http import HttpClient, HttpResponse
from refundflow.connectors.oauth_tokens import CachedTokenSource, RefreshTokenGrant, send_with_token
from refundflow.errors import RejectedError, TransientError


def answer(status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status=status, headers=dict(headers or {}), body=json.dumps(body).encode() if body else b"")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class CountingSource(CachedTokenSource):
    """Hands out token-1, token-2... each living ``lifetime`` seconds."""

    def __init__(self, clock: Clock, lifetime: float = 3600.0) -> None:
        super().__init__(clock=clock, expiry_margin_seconds=300.0)
        self.fetched = 0
        self.lifetime = lifetime

    def _fetch(self) -> tuple[str, float]:
        self.fetched += 1
        return f"token-{self.fetched}", self.lifetime


class ScriptedGrant(RefreshTokenGrant):
    """A refresh-token grant whose token endpoint answers from a script, recording the refresh token each request
    carried."""

    service = "Example identity"
    unavailable_code = "example_identity_unavailable"
    reconnect_code = "example_reconnect_required"
    reconnect_hint = "reconnect the {title} app"
    secret_store_code = "example_secret_store"

    def __init__(
        self,
        answers: list[HttpResponse],
        stored: dict[str, Any],
        *,
        rotates: bool = True,
        stored_meanwhile: dict[str, Any] | None = None,
    ) -> None:
        self.answers = answers
        self.stored = stored
        self.stored_meanwhile = stored_meanwhile
        self.saved: list[dict[str, Any]] = []
        self.sent: list[str] = []
        self.fresh_reads = 0
        super().__init__(
            platform="example",
            title="Example",
            http=HttpClient(platform="example", base_url="http://127.0.0.1:9", timeout=(1.0, 1.0)),
            load_secret=self._load,
            save_secret=self.saved.append if rotates else None,
            clock=Clock(),
            expiry_margin_seconds=60.0,
        )

    def _load(self, fresh: bool) -> Mapping[str, Any]:
        self.fresh_reads += fresh
        return dict(self.stored_meanwhile if fresh and self.stored_meanwhile else self.stored)

    def _token_request(self, secret: Mapping[str, Any]) -> HttpResponse:
        self.sent.append(str(secret["refresh_token"]))
        return self.answers.pop(0)


SECRET = {"client_id": "id", "client_secret": "s3cret", "refresh_token": "rt-1", "tenant_id": "org-1"}


def test_a_cached_token_is_reused_until_the_margin_before_it_expires() -> None:
    # GIVEN a source whose tokens live an hour, with a five-minute margin
    clock = Clock()
    source = CountingSource(clock)
    first = source.access_token()
    # WHEN it is asked again inside the hour, then inside the margin
    clock.now += 3000
    again = source.access_token()
    clock.now += 400
    renewed = source.access_token()
    # THEN the first token serves until the margin, then a new one is fetched
    assert (first, again, renewed) == ("token-1", "token-1", "token-2")


def test_invalidate_forgets_the_cached_token() -> None:
    source = CountingSource(Clock())
    source.access_token()
    source.invalidate()
    assert source.access_token() == "token-2"


def test_a_401_buys_one_new_token_and_the_call_is_sent_again_once() -> None:
    # GIVEN an API that refuses the first token
    source = CountingSource(Clock())
    seen: list[str] = []

    def send(token: str) -> HttpResponse:
        seen.append(token)
        return answer(401) if token == "token-1" else answer(200, {"ok": True})

    # WHEN a call is sent through send_with_token
    response = send_with_token(source, send)
    # THEN the second token's answer is the result
    assert response.status == 200
    assert seen == ["token-1", "token-2"]


def test_a_second_401_is_final() -> None:
    source = CountingSource(Clock())
    seen: list[str] = []

    def send(token: str) -> HttpResponse:
        seen.append(token)
        return answer(401)

    assert send_with_token(source, send).status == 401
    assert seen == ["token-1", "token-2"]


def test_a_rotated_refresh_token_is_kept_and_stored() -> None:
    # GIVEN a platform that answers a refresh with a new refresh token
    grant = ScriptedGrant([answer(200, {"access_token": "at-1", "expires_in": 1800, "refresh_token": "rt-2"})], SECRET)
    # WHEN a token is asked for
    token = grant.access_token()
    # THEN the new refresh token is stored with the rest of the secret
    assert token == "at-1"
    assert grant.saved == [{**SECRET, "refresh_token": "rt-2"}]
    assert grant.secret_field("tenant_id") == "org-1"


def test_a_refresh_token_another_process_rotated_is_read_again_once() -> None:
    # GIVEN a refresh token the platform no longer takes, and a newer one in the store
    grant = ScriptedGrant(
        [answer(400, {"error": "invalid_grant"}), answer(200, {"access_token": "at-2", "expires_in": 1800})],
        SECRET,
        stored_meanwhile={**SECRET, "refresh_token": "rt-newer"},
    )
    # WHEN a token is asked for
    token = grant.access_token()
    # THEN the secret was read again bypassing caches and the refresh retried with the newer token
    assert token == "at-2"
    assert grant.sent == ["rt-1", "rt-newer"]
    assert grant.fresh_reads == 1


def test_a_refused_refresh_token_asks_for_a_reconnect() -> None:
    grant = ScriptedGrant([answer(400, {"error": "invalid_grant"})], SECRET)
    with pytest.raises(RejectedError) as refused:
        grant.access_token()
    assert refused.value.code == "example_reconnect_required"
    assert "reconnect the Example app" in refused.value.message
    assert grant.fresh_reads == 1  # the store held the same token: no second request
    assert grant.sent == ["rt-1"]


def test_a_token_endpoint_outage_is_transient_with_its_retry_after() -> None:
    grant = ScriptedGrant([answer(429, {"error": "slow_down"}, {"Retry-After": "7"})], SECRET)
    with pytest.raises(TransientError) as unavailable:
        grant.access_token()
    assert unavailable.value.code == "example_identity_unavailable"
    assert unavailable.value.retry_after_seconds == 7.0


def test_a_rotated_token_that_cannot_be_stored_is_transient_and_kept_in_memory() -> None:
    # GIVEN a store that fails
    grant = ScriptedGrant(
        [
            answer(200, {"access_token": "at-1", "expires_in": 1800, "refresh_token": "rt-2"}),
            answer(200, {"access_token": "at-2", "expires_in": 1800}),
        ],
        SECRET,
    )

    def broken(value: dict[str, Any]) -> None:
        raise OSError("store down")

    grant._save_secret = broken
    # WHEN a token is asked for, and again
    with pytest.raises(TransientError) as unstored:
        grant.access_token()
    grant.access_token()
    # THEN the failure is transient and the next refresh uses the newest token
    assert unstored.value.code == "example_secret_store"
    assert grant.sent == ["rt-1", "rt-2"]


def test_a_platform_that_does_not_rotate_stores_nothing() -> None:
    grant = ScriptedGrant(
        [answer(200, {"access_token": "at-1", "expires_in": 3600, "refresh_token": "rt-2"})], SECRET, rotates=False
    )
    assert grant.access_token() == "at-1"
    assert grant.saved == []
