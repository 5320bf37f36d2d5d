"""The Stripe simulator's own strictness, spoken to over plain HTTP the way Stripe is."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.base import FaultRule
from local.simulators.stripe import StripeSimulator, parse_params
from refundflow.platforms.stripe.payloads import WEBHOOK_EVENTS
from tests.support.servers import serve_wsgi

KEY = "sk_test_simulator_a_0000000000"
OTHER_KEY = "sk_test_simulator_b_1111111111"
SECRET = "whsec_simulator_test"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[StripeSimulator, str]]:
    simulator = StripeSimulator([KEY, OTHER_KEY], pending_refund_settle_seconds=None, refund_fail_after_seconds=None)
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(server: tuple[StripeSimulator, str]) -> StripeSimulator:
    simulator, url = server
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    simulator.processing_delay_seconds = 0.0
    simulator.webhooks.configure(None, None)
    simulator.enabled_events = frozenset({"*"})
    return simulator


@pytest.fixture
def url(server: tuple[StripeSimulator, str], simulator: StripeSimulator) -> str:
    return server[1]


def post(
    url: str, path: str, data: dict[str, Any], *, key: str = KEY, idempotency: str | None = None
) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency is not None:
        headers["Idempotency-Key"] = idempotency
    return requests.post(f"{url}{path}", data=data, headers=headers, timeout=5)


def get(url: str, path: str, params: dict[str, Any] | None = None, *, key: str = KEY) -> requests.Response:
    return requests.get(f"{url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=5)


def pay(url: str, amount: int = 1_000, currency: str = "usd", method: str = "pm_card_visa") -> dict[str, Any]:
    answer = post(
        url,
        "/v1/payment_intents",
        {"amount": amount, "currency": currency, "payment_method": method, "confirm": "true"},
    )
    assert answer.status_code == 200, answer.text
    intent: dict[str, Any] = answer.json()
    return intent


# ---------------------------------------------------------------- auth and errors


def test_request_without_api_key_gets_401_in_stripes_error_shape(url: str) -> None:
    # GIVEN / WHEN a request with no credentials
    answer = requests.get(f"{url}/v1/refunds", timeout=5)

    # THEN
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "You did not provide an API key" in answer.json()["error"]["message"]


def test_request_with_unknown_key_gets_401_with_the_key_masked(url: str) -> None:
    # GIVEN / WHEN
    answer = get(url, "/v1/refunds", key="sk_test_wrong_key_987654321")

    # THEN the key is not echoed back in full
    assert answer.status_code == 401
    message = answer.json()["error"]["message"]
    assert message.startswith("Invalid API Key provided: sk_test_")
    assert "wrong_key" not in message
    assert message.endswith("4321")


def test_basic_auth_with_the_key_as_user_name_is_accepted(url: str) -> None:
    # GIVEN the key sent as curl -u sk_test_…: does
    token = base64.b64encode(f"{KEY}:".encode()).decode()

    # WHEN
    answer = requests.get(f"{url}/v1/refunds", headers={"Authorization": f"Basic {token}"}, timeout=5)

    # THEN
    assert answer.status_code == 200
    assert answer.json()["object"] == "list"


def test_unknown_objects_are_404_resource_missing(url: str) -> None:
    # GIVEN / WHEN ids that were never issued
    refund = get(url, "/v1/refunds/re_missing")
    intent = get(url, "/v1/payment_intents/pi_missing")
    refund_of_missing = post(url, "/v1/refunds", {"payment_intent": "pi_missing"})

    # THEN each says so, Stripe-style
    assert (refund.status_code, refund.json()["error"]["code"]) == (404, "resource_missing")
    assert refund.json()["error"]["message"] == "No such refund: 're_missing'"
    assert (intent.status_code, intent.json()["error"]["code"]) == (404, "resource_missing")
    assert (refund_of_missing.status_code, refund_of_missing.json()["error"]["param"]) == (404, "payment_intent")


def test_unknown_url_is_404_unrecognized(url: str) -> None:
    # GIVEN / WHEN
    answer = get(url, "/v1/refundz")

    # THEN
    assert answer.status_code == 404
    assert answer.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/refundz)")


def test_unknown_parameter_is_refused(url: str) -> None:
    # GIVEN a PaymentIntent
    intent = pay(url)

    # WHEN a refund carries a parameter Stripe does not know
    answer = post(url, "/v1/refunds", {"payment_intent": intent["id"], "amout": "100"})

    # THEN
    assert answer.status_code == 400
    assert (answer.json()["error"]["code"], answer.json()["error"]["param"]) == ("parameter_unknown", "amout")


@pytest.mark.parametrize(("amount", "message"), [("abc", "Invalid integer: abc"), ("0", "Invalid positive integer")])
def test_refund_amount_must_be_a_positive_integer(url: str, amount: str, message: str) -> None:
    # GIVEN / WHEN
    answer = post(url, "/v1/refunds", {"payment_intent": pay(url)["id"], "amount": amount})

    # THEN
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == message


def test_declined_card_is_a_402_card_error(url: str) -> None:
    # GIVEN / WHEN a payment with Stripe's declining test card
    answer = post(
        url,
        "/v1/payment_intents",
        {"amount": 500, "currency": "usd", "payment_method": "pm_card_chargeDeclined", "confirm": "true"},
    )

    # THEN
    assert answer.status_code == 402
    assert (answer.json()["error"]["type"], answer.json()["error"]["code"]) == ("card_error", "card_declined")


# ---------------------------------------------------------------- refunds and the charge


def test_charge_tracks_partial_refunds_and_full_refund(simulator: StripeSimulator, url: str) -> None:
    # GIVEN a captured 10.00 USD payment
    intent = pay(url)

    # WHEN 4.00 then the rest (no amount) are refunded
    first = post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "400", "metadata[refund_id]": "rf_a"})
    charge_after_first = get(url, f"/v1/charges/{intent['latest_charge']}").json()
    rest = post(url, "/v1/refunds", {"charge": intent["latest_charge"]})
    charge = get(url, f"/v1/charges/{intent['latest_charge']}").json()

    # THEN the refunds are Stripe objects and the charge's bookkeeping follows
    assert first.json()["object"] == "refund"
    assert first.json()["metadata"] == {"refund_id": "rf_a"}
    assert (charge_after_first["amount_refunded"], charge_after_first["refunded"]) == (400, False)
    assert rest.json()["amount"] == 600
    assert (charge["amount_refunded"], charge["refunded"]) == (1_000, True)


def test_over_refund_and_already_refunded_errors_match_stripe(url: str) -> None:
    # GIVEN a 10.00 USD payment with 7.00 refunded
    intent = pay(url)
    post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "700"})

    # WHEN 5.00 are asked, then the rest, then anything
    over = post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "500"})
    post(url, "/v1/refunds", {"payment_intent": intent["id"]})
    again = post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "1"})

    # THEN over-refund has no code (as at Stripe) and names the amounts; a refunded charge says so
    assert over.status_code == 400
    assert over.json()["error"] == {
        "message": "Refund amount ($5.00) is greater than unrefunded amount on charge ($3.00)",
        "type": "invalid_request_error",
        "param": "amount",
    }
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "charge_already_refunded"


def test_failed_refund_gives_its_amount_back_to_the_charge(simulator: StripeSimulator, url: str) -> None:
    # GIVEN a pending refund of 6.00 on 10.00
    intent = pay(url, method="pm_card_pendingRefund")
    refund = post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "600"}).json()

    # WHEN the network fails it
    moved = requests.post(
        f"{url}/_control/refunds/{refund['id']}/status",
        json={"status": "failed", "failure_reason": "declined"},
        timeout=5,
    )

    # THEN the refund is failed with its reason and all 10.00 can be refunded again
    assert refund["status"] == "pending"
    assert (moved.json()["status"], moved.json()["failure_reason"]) == ("failed", "declined")
    assert get(url, f"/v1/charges/{intent['latest_charge']}").json()["amount_refunded"] == 0
    assert post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "1000"}).status_code == 200


def test_refund_can_be_canceled_only_while_it_requires_action(url: str) -> None:
    # GIVEN a succeeded refund and a pending one moved to requires_action
    done = post(url, "/v1/refunds", {"payment_intent": pay(url)["id"], "amount": "100"}).json()
    waiting = post(
        url, "/v1/refunds", {"payment_intent": pay(url, method="pm_card_pendingRefund")["id"], "amount": "100"}
    ).json()
    requests.post(f"{url}/_control/refunds/{waiting['id']}/status", json={"status": "requires_action"}, timeout=5)

    # WHEN both are canceled
    refused = post(url, f"/v1/refunds/{done['id']}/cancel", {})
    canceled = post(url, f"/v1/refunds/{waiting['id']}/cancel", {})

    # THEN only the one requiring action is
    assert refused.status_code == 400
    assert "Only refunds with a status of requires_action can be canceled" in refused.json()["error"]["message"]
    assert canceled.json()["status"] == "canceled"


def test_control_route_refuses_a_transition_refunds_do_not_make(url: str) -> None:
    # GIVEN a canceled-never, succeeded refund
    refund = post(url, "/v1/refunds", {"payment_intent": pay(url)["id"], "amount": "100"}).json()

    # WHEN it is asked to go back to pending
    answer = requests.post(f"{url}/_control/refunds/{refund['id']}/status", json={"status": "pending"}, timeout=5)

    # THEN
    assert answer.status_code == 409


def test_isk_amounts_must_be_whole_kronur(url: str) -> None:
    # GIVEN / WHEN an ISK payment of 5.50 kr (Stripe: multiples of 100 only)
    answer = post(
        url,
        "/v1/payment_intents",
        {"amount": 550, "currency": "isk", "payment_method": "pm_card_visa", "confirm": "true"},
    )

    # THEN
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_charge_amount_no_decimal_compatible"


# ---------------------------------------------------------------- idempotency


def test_same_key_replays_the_first_response_with_the_replay_header(simulator: StripeSimulator, url: str) -> None:
    # GIVEN a refund made with an idempotency key
    intent = pay(url)
    data = {"payment_intent": intent["id"], "amount": "300", "metadata[refund_id]": "rf_1"}
    first = post(url, "/v1/refunds", data, idempotency="key-1")

    # WHEN the same request is sent again
    again = post(url, "/v1/refunds", data, idempotency="key-1")

    # THEN the body is the same, marked as a replay, and there is one refund
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(simulator.refunds_of(intent["id"])) == 1


def test_same_key_with_other_parameters_is_an_idempotency_error(simulator: StripeSimulator, url: str) -> None:
    # GIVEN a refund of 3.00 under key-2
    intent = pay(url)
    post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "300"}, idempotency="key-2")

    # WHEN the key comes back with 4.00, or on another endpoint
    other_amount = post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "400"}, idempotency="key-2")
    other_endpoint = post(url, "/v1/payment_intents", {"amount": "400", "currency": "usd"}, idempotency="key-2")

    # THEN both are 400 idempotency_error, and nothing else was created
    assert other_amount.status_code == 400
    assert other_amount.json()["error"]["type"] == "idempotency_error"
    assert "same parameters" in other_amount.json()["error"]["message"]
    assert other_endpoint.status_code == 400
    assert "same endpoint" in other_endpoint.json()["error"]["message"]
    assert [refund["amount"] for refund in simulator.refunds_of(intent["id"])] == [300]


def test_errors_are_saved_and_replayed_but_validation_failures_are_not(url: str) -> None:
    # GIVEN an over-refund made under key-3, and a malformed request made under key-4
    intent = pay(url)
    over = {"payment_intent": intent["id"], "amount": "5000"}
    first = post(url, "/v1/refunds", over, idempotency="key-3")
    malformed = post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "x"}, idempotency="key-4")

    # WHEN each key is used again
    replayed = post(url, "/v1/refunds", over, idempotency="key-3")
    fresh = post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "100"}, idempotency="key-4")

    # THEN the business error is replayed as it was; the validation failure left the key free
    assert (first.status_code, replayed.status_code) == (400, 400)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == first.json()
    assert malformed.status_code == 400
    assert fresh.status_code == 200


def test_idempotency_keys_are_scoped_per_api_key(simulator: StripeSimulator, url: str) -> None:
    # GIVEN a refund made with key-5 under one API key
    intent = pay(url)
    data = {"payment_intent": intent["id"], "amount": "100"}
    mine = post(url, "/v1/refunds", data, idempotency="key-5")

    # WHEN another API key uses the same idempotency key
    theirs = post(url, "/v1/refunds", data, key=OTHER_KEY, idempotency="key-5")

    # THEN it is a different request
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert len(simulator.refunds_of(intent["id"])) == 2


def test_same_key_while_the_first_request_is_in_flight_is_409(simulator: StripeSimulator, url: str) -> None:
    # GIVEN a refund request whose work is done and whose answer is held back for 3 s (its key in flight)
    intent = pay(url)
    simulator.processing_delay_seconds = 3.0
    data = {"payment_intent": intent["id"], "amount": "100"}
    answers: dict[str, requests.Response] = {}
    first = threading.Thread(
        target=lambda: answers.setdefault("first", post(url, "/v1/refunds", data, idempotency="key-6"))
    )
    first.start()
    deadline = time.monotonic() + 30
    while not simulator.refunds_of(intent["id"]):  # the work is done: the answer is being held
        assert time.monotonic() < deadline, "the first request never reached the simulator"
        time.sleep(0.01)

    # WHEN the same key arrives meanwhile
    concurrent = post(url, "/v1/refunds", data, idempotency="key-6")
    first.join(timeout=30)
    simulator.processing_delay_seconds = 0.0
    later = post(url, "/v1/refunds", data, idempotency="key-6")

    # THEN the second gets 409, telling the SDK a retry will work once the first is done
    assert concurrent.status_code == 409
    assert concurrent.json()["error"]["code"] == "idempotency_key_in_use"
    assert concurrent.headers["Stripe-Should-Retry"] == "true"
    # AND the first gets its refund, and a later retry the replay of that one
    assert answers["first"].status_code == 200
    assert "Stripe-Should-Retry" not in answers["first"].headers
    assert later.json()["id"] == answers["first"].json()["id"]
    assert len(simulator.refunds_of(intent["id"])) == 1


def test_a_500_saved_under_a_key_says_a_retry_is_useless_first_and_on_replay(
    simulator: StripeSimulator, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a refund endpoint that breaks inside (Stripe's own 500, saved by its idempotency layer)
    intent = pay(url)

    def broken(params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("internal failure")

    monkeypatch.setattr(simulator, "_charge_to_refund", broken)
    data = {"payment_intent": intent["id"], "amount": "100"}

    # WHEN the request is made, and made again with its key
    first = post(url, "/v1/refunds", data, idempotency="key-500")
    again = post(url, "/v1/refunds", data, idempotency="key-500")

    # THEN both are the same 500, and both tell the SDK not to retry (a retry would only replay it)
    assert (first.status_code, again.status_code) == (500, 500)
    assert first.headers["Stripe-Should-Retry"] == again.headers["Stripe-Should-Retry"] == "false"
    assert again.headers["Idempotent-Replayed"] == "true"
    # AND a request without a key (nothing saved) leaves the decision to the SDK's own rules
    unkeyed = post(url, "/v1/refunds", data)
    assert unkeyed.status_code == 500
    assert "Stripe-Should-Retry" not in unkeyed.headers


def test_a_fault_rule_can_send_stripe_should_retry(simulator: StripeSimulator, url: str) -> None:
    # GIVEN a fault rule that answers 503 with Stripe's advice not to retry
    intent = pay(url)
    rule = {"method": "POST", "path": "^/v1/refunds$", "status": 503, "headers": {"Stripe-Should-Retry": "false"}}
    assert requests.post(f"{url}/_control/faults", json=rule, timeout=5).status_code == 201
    # WHEN the next refund request comes / THEN it carries the header, in Stripe's error shape
    answer = post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "100"}, idempotency="key-f")
    assert answer.status_code == 503
    assert answer.headers["Stripe-Should-Retry"] == "false"
    assert answer.json()["error"]["type"] == "api_error"


def test_fault_after_the_work_keeps_the_saved_success_for_the_retry(simulator: StripeSimulator, url: str) -> None:
    # GIVEN a 500 injected after the refund is done
    intent = pay(url)
    simulator.add_fault(FaultRule(method="POST", path="^/v1/refunds$", status=500, when="after"))
    data = {"payment_intent": intent["id"], "amount": "100"}

    # WHEN the client sees the 500 and retries with its key
    failed = post(url, "/v1/refunds", data, idempotency="key-7")
    retried = post(url, "/v1/refunds", data, idempotency="key-7")

    # THEN the 500 was Stripe-shaped, the retry replays the refund, and only one exists
    assert (failed.status_code, failed.json()["error"]["type"]) == (500, "api_error")
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert len(simulator.refunds_of(intent["id"])) == 1


# ---------------------------------------------------------------- lists


def test_refund_list_pages_newest_first_with_has_more(url: str) -> None:
    # GIVEN five refunds on one payment
    intent = pay(url, amount=5_000)
    created = [
        post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "100"}).json()["id"] for _ in range(5)
    ]

    # WHEN they are listed two at a time, following starting_after
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"payment_intent": intent["id"], "limit": 2}
        if cursor:
            params["starting_after"] = cursor
        page = get(url, "/v1/refunds", params).json()
        pages.append(page)
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]

    # THEN every refund comes once, newest first, in pages of 2, 2 and 1
    assert [len(page["data"]) for page in pages] == [2, 2, 1]
    assert [refund["id"] for page in pages for refund in page["data"]] == created[::-1]
    assert pages[0]["object"] == "list"
    assert pages[0]["url"] == "/v1/refunds"


def test_refund_list_ending_before_goes_back_and_unknown_cursor_is_refused(url: str) -> None:
    # GIVEN three refunds
    intent = pay(url)
    created = [
        post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "100"}).json()["id"] for _ in range(3)
    ]

    # WHEN listing before the oldest, and after an id that does not exist
    before = get(url, "/v1/refunds", {"payment_intent": intent["id"], "ending_before": created[0]}).json()
    unknown = get(url, "/v1/refunds", {"payment_intent": intent["id"], "starting_after": "re_nope"})

    # THEN the two newer come back; the unknown cursor is a 400
    assert [refund["id"] for refund in before["data"]] == [created[2], created[1]]
    assert unknown.status_code == 400


def test_refund_list_filters_by_payment(url: str) -> None:
    # GIVEN refunds on two payments
    mine, other = pay(url), pay(url)
    post(url, "/v1/refunds", {"payment_intent": mine["id"], "amount": "100"})
    post(url, "/v1/refunds", {"payment_intent": other["id"], "amount": "100"})

    # WHEN listing one payment's refunds, by PaymentIntent and by Charge
    by_intent = get(url, "/v1/refunds", {"payment_intent": mine["id"]}).json()["data"]
    by_charge = get(url, "/v1/refunds", {"charge": mine["latest_charge"]}).json()["data"]

    # THEN only its refund is there
    assert [refund["payment_intent"] for refund in by_intent] == [mine["id"]]
    assert by_charge == by_intent


# ---------------------------------------------------------------- webhooks


def test_refund_events_are_signed_stripe_events(simulator: StripeSimulator, url: str) -> None:
    # GIVEN a webhook endpoint that records deliveries
    received: list[tuple[str, bytes]] = []

    def endpoint(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        received.append((environ["HTTP_STRIPE_SIGNATURE"], body))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    with serve_wsgi(endpoint) as hook:
        simulator.webhooks.configure(hook, SECRET)
        intent = pay(url)

        # WHEN a refund is made under an idempotency key
        refund = post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "100"}, idempotency="key-8").json()
        assert simulator.webhooks.wait_idle(timeout=30)

    # THEN refund.created and charge.refunded arrive as event objects, each signed as Stripe documents
    events = []
    for header, body in received:
        fields = dict(item.split("=", 1) for item in header.split(","))
        expected = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(fields["v1"], expected)
        assert abs(int(fields["t"]) - time.time()) < 60
        events.append(json.loads(body))
    assert [event["type"] for event in events] == ["refund.created", "charge.refunded"]
    created = events[0]
    assert created["id"].startswith("evt_")
    assert (created["object"], created["livemode"], created["api_version"]) == ("event", False, simulator.api_version)
    assert created["request"]["idempotency_key"] == "key-8"
    assert created["data"]["object"]["id"] == refund["id"]
    assert events[1]["data"]["object"]["amount_refunded"] == 100


def test_the_endpoint_receives_only_its_enabled_events(simulator: StripeSimulator, url: str) -> None:
    # GIVEN an endpoint registered for the event types refundflow's setup names (no charge.refunded)
    received: list[str] = []

    def endpoint(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        received.append(json.loads(body)["type"])
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    with serve_wsgi(endpoint) as hook:
        refused = requests.post(f"{url}/_control/webhook-endpoint", json={"url": hook, "enabled_events": []}, timeout=5)
        assert refused.status_code == 400
        registered = requests.post(
            f"{url}/_control/webhook-endpoint",
            json={"url": hook, "secret": SECRET, "enabled_events": list(WEBHOOK_EVENTS)},
            timeout=5,
        ).json()
        assert registered["enabled_events"] == sorted(WEBHOOK_EVENTS)
        intent = pay(url)
        # WHEN a refund is made through the API and another in the Dashboard
        post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "100"}, idempotency="key-10")
        requests.post(
            f"{url}/_control/dashboard-refunds", json={"payment_intent": intent["id"], "amount": 200}, timeout=5
        ).raise_for_status()
        assert simulator.webhooks.wait_idle(timeout=30)

    # THEN each refund is told once, by refund.created; charge.refunded was made (Stripe lists every event) but
    # not sent, and says so (pending_webhooks 0)
    assert received == ["refund.created", "refund.created"]
    made_events = requests.get(f"{url}/_control/events", timeout=5).json()["events"]
    assert [event["type"] for event in made_events] == ["refund.created", "charge.refunded"] * 2
    assert {event["type"]: event["pending_webhooks"] for event in made_events} == {
        "refund.created": 1,
        "charge.refunded": 0,
    }


def test_reset_forgets_objects_keys_and_faults(simulator: StripeSimulator, url: str) -> None:
    # GIVEN state, a saved key and a pending fault
    intent = pay(url)
    post(url, "/v1/refunds", {"payment_intent": intent["id"], "amount": "100"}, idempotency="key-9")
    simulator.add_fault(FaultRule(path="^/v1/charges", status=503, times=-1))

    # WHEN the simulator is reset
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()

    # THEN the payment is gone and nothing is injected any more
    assert get(url, f"/v1/payment_intents/{intent['id']}").status_code == 404
    assert get(url, "/v1/charges/ch_x").status_code == 404
    assert simulator.refund_objects == {}


# ---------------------------------------------------------------- form encoding


def test_bracket_syntax_builds_hashes_and_lists() -> None:
    # GIVEN Stripe's form encoding of metadata and expand
    pairs = [
        ("metadata[refund_id]", "rf_1"),
        ("metadata[order]", "42"),
        ("expand[0]", "a"),
        ("expand[]", "b"),
        ("amount", "5"),
    ]

    # WHEN / THEN
    assert parse_params(pairs) == {
        "metadata": {"refund_id": "rf_1", "order": "42"},
        "expand": ["a", "b"],
        "amount": "5",
    }


def test_the_local_stack_registers_the_events_refundflow_setup_names() -> None:
    # GIVEN a simulator on its own: every event goes out (Stripe's ["*"])
    simulator = StripeSimulator([KEY])
    assert simulator.sends("charge.refunded")
    # WHEN the local stack points it at its /webhooks/stripe
    simulator.send_webhooks_to("http://127.0.0.1:9/webhooks/stripe")
    # THEN the endpoint is registered as README's step 4 says: the refund and payout events, not charge.refunded
    assert simulator.enabled_events == frozenset(WEBHOOK_EVENTS)
    assert [name for name in ("refund.created", "refund.updated", "refund.failed") if simulator.sends(name)] == [
        "refund.created",
        "refund.updated",
        "refund.failed",
    ]
    assert not simulator.sends("charge.refunded")
