"""The Square simulator on its own: strict where Square is (auth, version header, the request's fields, key reuse,
what is refundable), with Square's error shape, and its control routes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.square import DEFAULT_ACCESS_TOKEN, MANUAL, SquareSimulator
from tests.support.servers import serve_wsgi

AUTH = {"Authorization": f"Bearer {DEFAULT_ACCESS_TOKEN}", "Square-Version": "2025-08-20"}


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[SquareSimulator, str, _Clock]]:
    clock = _Clock()
    simulator = SquareSimulator(settle_after_seconds=None, key_ttl_seconds=3_600, now=clock)
    with serve_wsgi(simulator) as url:
        yield simulator, url, clock


def refund(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{url}/v2/refunds", json=body, headers=AUTH if headers is None else headers, timeout=5)


def body_for(payment_id: str, amount: int = 1_000, key: str = "key-1", **extra: Any) -> dict[str, Any]:
    return {"idempotency_key": key, "amount_money": {"amount": amount, "currency": "USD"}, "payment_id": payment_id}


def code_of(answer: requests.Response) -> str:
    [error] = answer.json()["errors"]
    assert set(error) <= {"category", "code", "detail", "field"}
    return str(error["code"])


def test_auth_version_and_fields_are_checked_before_anything_is_done(
    served: tuple[SquareSimulator, str, _Clock],
) -> None:
    simulator, url, _ = served
    payment = simulator.seed_payment(5_000, "USD")["payment_id"]
    cases = [
        (body_for(payment), {}, 401, "UNAUTHORIZED"),
        (body_for(payment), {**AUTH, "Square-Version": "latest"}, 400, "INVALID_SQUARE_VERSION_FORMAT"),
        ({**body_for(payment), "unlinked": True}, AUTH, 400, "BAD_REQUEST"),
        ({**body_for(payment), "note": "x"}, AUTH, 400, "BAD_REQUEST"),
        (
            {"amount_money": {"amount": 1, "currency": "USD"}, "payment_id": payment},
            AUTH,
            400,
            "MISSING_REQUIRED_PARAMETER",
        ),
        (body_for(payment, key="k" * 46), AUTH, 400, "VALUE_TOO_LONG"),
        ({**body_for(payment), "reason": "r" * 193}, AUTH, 400, "VALUE_TOO_LONG"),
        ({**body_for(payment), "amount_money": {"amount": "10", "currency": "USD"}}, AUTH, 400, "EXPECTED_INTEGER"),
        (body_for(payment, amount=0), AUTH, 400, "VALUE_TOO_LOW"),
        (body_for("NoSuchPayment"), AUTH, 404, "NOT_FOUND"),
        (body_for(payment, amount=5_001), AUTH, 400, "REFUND_AMOUNT_INVALID"),
    ]
    for body, headers, status, code in cases:
        answer = refund(url, body, headers)
        assert (answer.status_code, code_of(answer)) == (status, code), body
    assert simulator.refunds() == []
    assert (
        requests.post(
            f"{url}/v2/refunds", data="{", headers={**AUTH, "Content-Type": "application/json"}, timeout=5
        ).status_code
        == 400
    )


def test_a_key_answers_its_first_refund_refuses_another_request_and_expires(
    served: tuple[SquareSimulator, str, _Clock],
) -> None:
    simulator, url, clock = served
    payment = simulator.seed_payment(5_000, "USD")["payment_id"]
    first = refund(url, body_for(payment))
    again = refund(url, body_for(payment))
    assert first.status_code == again.status_code == 200
    assert first.json()["refund"]["id"] == again.json()["refund"]["id"]
    other = refund(url, body_for(payment, amount=2_000))
    assert (other.status_code, code_of(other)) == (400, "IDEMPOTENCY_KEY_REUSED")
    # a failed request keeps no key
    failed = refund(url, body_for(payment, amount=9_999, key="key-2"))
    assert code_of(failed) == "REFUND_AMOUNT_INVALID"
    assert refund(url, body_for(payment, amount=500, key="key-2")).status_code == 200
    # past the simulator's key retention the same key makes a new refund
    clock.now += 3_601
    assert refund(url, body_for(payment)).json()["refund"]["id"] != first.json()["refund"]["id"]
    assert len(simulator.refunds()) == 3


def test_a_repeat_while_the_first_is_processed_is_a_conflict() -> None:
    simulator = SquareSimulator(settle_after_seconds=None)
    simulator.processing_gate = threading.Event()
    with serve_wsgi(simulator) as url:
        payment = simulator.seed_payment(5_000, "USD")["payment_id"]
        answers: list[requests.Response] = []
        first = threading.Thread(target=lambda: answers.append(refund(url, body_for(payment))))
        first.start()
        while not simulator.refunds():  # wait on state: the first request made its refund and holds the key
            first.join(timeout=0.01)
        repeat = refund(url, body_for(payment))
        simulator.processing_gate.set()
        first.join()
    assert (repeat.status_code, code_of(repeat)) == (409, "CONFLICT")
    assert answers[0].status_code == 200
    assert len(simulator.refunds()) == 1


def test_payments_that_are_not_completed_and_other_currencies_are_refused(
    served: tuple[SquareSimulator, str, _Clock],
) -> None:
    simulator, url, _ = served
    approved = simulator.seed_payment(5_000, "USD", status="APPROVED")["payment_id"]
    assert code_of(refund(url, body_for(approved))) == "REFUND_ERROR_PAYMENT_NEEDS_COMPLETION"
    canceled = simulator.seed_payment(5_000, "USD", status="CANCELED")["payment_id"]
    assert code_of(refund(url, body_for(canceled, key="k2"))) == "PAYMENT_NOT_REFUNDABLE"
    pounds = simulator.seed_payment(5_000, "GBP")["payment_id"]
    assert code_of(refund(url, body_for(pounds, key="k3"))) == "CURRENCY_MISMATCH"
    with pytest.raises(ValueError, match="not a currency Square processes"):
        simulator.seed_payment(5_000, "CHF")


def test_a_failed_refund_gives_its_amount_back_and_the_payment_tells_what_is_refunded(
    served: tuple[SquareSimulator, str, _Clock],
) -> None:
    simulator, url, _ = served
    payment = simulator.seed_payment(5_000, "USD", behaviour=MANUAL)["payment_id"]
    made = refund(url, body_for(payment, amount=5_000)).json()["refund"]
    assert code_of(refund(url, body_for(payment, amount=1, key="k2"))) == "REFUND_AMOUNT_INVALID"
    outcome = requests.post(f"{url}/_control/refunds/{made['id']}/outcome", json={"succeeded": False}, timeout=5)
    assert outcome.json()["status"] == "FAILED"
    assert (
        requests.post(f"{url}/_control/refunds/{made['id']}/outcome", json={"succeeded": True}, timeout=5).status_code
        == 409
    )
    second = refund(url, body_for(payment, amount=3_000, key="k3")).json()["refund"]
    simulator.settle_refund(second["id"], True)
    paid = requests.get(f"{url}/v2/payments/{payment}", headers=AUTH, timeout=5).json()["payment"]
    assert paid["refunded_money"] == {"amount": 3_000, "currency": "USD"}
    assert paid["refund_ids"] == [made["id"], second["id"]]
    read = requests.get(f"{url}/v2/refunds/{second['id']}", headers=AUTH, timeout=5).json()["refund"]
    assert read["status"] == "COMPLETED"


def test_faults_answer_in_squares_error_shape(served: tuple[SquareSimulator, str, _Clock]) -> None:
    simulator, url, _ = served
    payment = simulator.seed_payment(5_000, "USD")["payment_id"]
    simulator.inject_fault("create_refund", "transient")
    limited = refund(url, body_for(payment))
    assert (limited.status_code, code_of(limited)) == (429, "RATE_LIMITED")
    simulator.inject_fault("get_payment", "server_error")
    broken = requests.get(f"{url}/v2/payments/{payment}", headers=AUTH, timeout=5)
    assert (broken.status_code, code_of(broken)) == (500, "INTERNAL_SERVER_ERROR")
    with pytest.raises(ValueError, match="unknown operation"):
        simulator.inject_fault("void", "transient")
    assert code_of(requests.get(f"{url}/v2/nothing", headers=AUTH, timeout=5)) == "NOT_FOUND"
