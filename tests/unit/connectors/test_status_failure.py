"""What an error answer's HTTP status alone says, the same for every connector on the shared HTTP client."""

from __future__ import annotations

import pytest

from refundflow.connectors.http import HttpResponse, missing, status_failure
from refundflow.errors import NotFound, OutcomeUnknownError, RejectedError, TransientError


def _answer(status: int, **headers: str) -> HttpResponse:
    return HttpResponse(status=status, headers=headers, body=b"{}")


def test_a_5xx_on_a_write_is_an_unknown_outcome_and_on_a_read_a_retry_when_told() -> None:
    assert isinstance(status_failure(_answer(502), "m", platform="acme", write=True), OutcomeUnknownError)
    read = status_failure(_answer(503, **{"Retry-After": "7"}), "m", platform="acme", write=False)
    assert isinstance(read, TransientError)
    assert read.retry_after_seconds == 7


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (429, TransientError, "rate_limited"),
        (409, TransientError, "idempotency_key_in_use"),
        (401, RejectedError, "provider_authentication_failed"),
        (403, RejectedError, "provider_permission_denied"),
    ],
)
def test_the_shared_statuses_whatever_the_call(status: int, kind: type[Exception], code: str) -> None:
    for write in (True, False):
        failure = status_failure(_answer(status), "m", platform="acme", write=write)
        assert isinstance(failure, kind)
        assert failure.code == code
        assert failure.platform == "acme"


def test_what_the_platforms_own_codes_decide_is_left_to_them() -> None:
    for status in (400, 404, 422):
        assert status_failure(_answer(status), "m", platform="acme", write=True) is None
    assert status_failure(_answer(409), "m", platform="acme", write=True, in_progress=None) is None
    conflict = status_failure(_answer(409), "m", platform="acme", write=True, in_progress="conflict")
    assert conflict is not None
    assert conflict.code == "conflict"


def test_a_missing_resource_is_not_found_on_a_read_and_a_refusal_on_a_write() -> None:
    assert isinstance(missing("m", platform="acme", write=False), NotFound)
    refused = missing("m", platform="acme", write=True)
    assert isinstance(refused, RejectedError)
    assert refused.code == "resource_missing"


@pytest.mark.parametrize("name", ["Retry-After", "retry-after", "Retry-after", "RETRY-AFTER"])
def test_retry_after_is_read_whatever_the_case_of_its_name(name: str) -> None:
    # GIVEN a 429 whose Retry-After is spelt as the platform spells it (Gorgias: "Retry-after")
    limited = HttpResponse(status=429, headers={name: "12"}, body=b"")
    # WHEN it is classified THEN the wait is the platform's
    failure = status_failure(limited, "limited", platform="gorgias", write=True, in_progress=None)
    assert isinstance(failure, TransientError)
    assert failure.retry_after_seconds == 12
