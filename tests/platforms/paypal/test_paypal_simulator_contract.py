"""The PayPal simulator's answers and events, checked against PayPal's official specs.

Every Payments v2 exchange the scenarios below make (refunds full, partial, pending, refused for each business
rule, look-ups, unknown ids, malformed bodies) is validated with openapi-core against ``paypal-payments-v2.json``
(request and answer, status by status), and every webhook event against ``paypal-webhooks-v1.json``'s ``event``
schema with its refund resource against the payments spec's ``refund``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.paypal import MANUAL, PayPalSimulator
from tests.platforms.paypal import contract
from tests.platforms.paypal.receiver import Receiver
from tests.support.servers import serve_wsgi

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    endpoint = Receiver()
    with serve_wsgi(endpoint) as url:
        yield endpoint, url


@pytest.fixture(scope="module")
def server(receiver: tuple[Receiver, str]) -> Iterator[tuple[PayPalSimulator, str]]:
    contract.contracts()
    simulator = PayPalSimulator(settle_after_seconds=None)
    with serve_wsgi(simulator) as url:
        simulator.webhooks.configure(f"{receiver[1]}/hook", "WH1")
        yield simulator, url


class Exchanges:
    """Sends requests to the simulator and keeps each as PayPal would have seen it, with the answer."""

    def __init__(self, url: str, simulator: PayPalSimulator) -> None:
        self.url = url
        self.simulator = simulator
        self.pairs: list[tuple[requests.Request, requests.Response]] = []
        self.token = requests.post(
            f"{url}/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=tuple(simulator.local_secrets()["api"].values()),
            timeout=5,
        ).json()["access_token"]

    def send(self, method: str, path: str, body: Any = None, **headers: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **{k.replace("_", "-"): v for k, v in headers.items()}}
        if body is not None:
            headers["Content-Type"] = "application/json"
        data = None if body is None else json.dumps(body)
        answer = requests.request(method, f"{self.url}{path}", data=data, headers=headers, timeout=5)
        self.pairs.append((requests.Request(method, f"{contract.SERVER}{path}", headers=headers, data=data), answer))
        return answer


def test_every_v2_exchange_and_event_matches_paypals_specs(
    server: tuple[PayPalSimulator, str], receiver: tuple[Receiver, str]
) -> None:
    simulator, url = server
    simulator.requests_seen.clear()
    calls = Exchanges(url, simulator)
    capture = simulator.seed_payment(5_000, "USD")["payment_id"]
    manual = simulator.seed_payment(5_000, "USD", behaviour=MANUAL)["payment_id"]
    pending_capture = simulator.seed_payment(5_000, "USD", settled=False)["payment_id"]
    refund_path = f"/v2/payments/captures/{capture}/refund"
    # GIVEN the scenarios refundflow meets
    partial = calls.send(
        "POST",
        refund_path,
        {"amount": {"currency_code": "USD", "value": "10.00"}, "custom_id": "rf_1", "note_to_payer": "Sorry"},
        PayPal_Request_Id="k1",
        Prefer="return=representation",
    )
    calls.send("POST", refund_path, {"amount": {"currency_code": "USD", "value": "10.00"}}, PayPal_Request_Id="k1")
    calls.send("POST", refund_path, {"amount": {"currency_code": "USD", "value": "99.00"}})
    calls.send("POST", refund_path, {"amount": {"currency_code": "EUR", "value": "1.00"}})
    calls.send("POST", refund_path, {"amount": {"currency_code": "USD", "value": "1.001"}})
    calls.send("POST", refund_path, {"amount": {"value": "1.00"}})
    calls.send("POST", f"/v2/payments/captures/{pending_capture}/refund", {})
    pending = calls.send("POST", f"/v2/payments/captures/{manual}/refund", {}, Prefer="return=representation")
    simulator.settle_refund(pending.json()["id"], succeeded=True)
    calls.send("POST", refund_path, {}, Prefer="return=representation")
    calls.send("POST", refund_path, {})
    calls.send("POST", "/v2/payments/captures/NOSUCH/refund", {})
    calls.send("GET", f"/v2/payments/captures/{capture}")
    calls.send("GET", f"/v2/payments/refunds/{partial.json()['id']}")
    calls.send("GET", "/v2/payments/refunds/NOSUCH")
    # WHEN each exchange is checked against the spec / THEN none breaks it
    statuses = sorted({answer.status_code for _, answer in calls.pairs})
    assert statuses == [200, 201, 400, 404, 422]
    for request, answer in calls.pairs:
        contract.validate_exchange(request, answer)
    # AND the simulator refuses with a 400 exactly the requests the spec refuses
    for seen, (_, answer) in zip(
        [seen for seen in simulator.requests_seen if contract.is_v2(seen["path"])], calls.pairs, strict=True
    ):
        try:
            contract.validate_request(seen)
            valid = True
        except Exception:  # openapi-core's validation errors have no common public base
            valid = False
        assert valid == (answer.status_code != 400), (seen["body"], answer.status_code)
    # AND every webhook event it sent matches the webhooks spec
    events = [delivery.event() for delivery in receiver[0].wait_for(3)]
    assert {event["event_type"] for event in events} == {"PAYMENT.CAPTURE.REFUNDED"}
    for event in events:
        assert contract.event_errors(event) == []


def test_the_spec_check_catches_a_wrong_answer(server: tuple[PayPalSimulator, str]) -> None:
    # GIVEN a refund answer with a status the spec does not allow / THEN the validator says so
    simulator, url = server
    calls = Exchanges(url, simulator)
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    answer = calls.send("POST", f"/v2/payments/captures/{capture}/refund", {}, Prefer="return=representation")
    answer._content = answer.content.replace(b'"COMPLETED"', b'"DONE"')
    with pytest.raises(Exception, match=r"DONE|status"):
        contract.validate_exchange(*calls.pairs[-1])
    event = {"id": "WH-1", "event_type": "PAYMENT.CAPTURE.REFUNDED", "resource_type": "refund"}
    assert contract.event_errors({**event, "resource_version": "2.0", "resource": {"status": "DONE"}}) != []
