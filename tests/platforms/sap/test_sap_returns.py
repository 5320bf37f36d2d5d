"""SAP as a return trigger: the customer return's business event (CloudEvents JSON over an Event Mesh webhook
subscription, Basic authentication) verified by intake, and the customer return read from API_CUSTOMER_RETURN_SRV
by SAP's books function; the simulator pushes the event with the credentials the verification secret holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from local.simulators.base import FaultRule
from local.simulators.sap import RETURN_CHANGED, SapSimulator
from refundflow.adapters.news import LambdaNewsForwarder, news_payload
from refundflow.errors import AuthenticationFailed, InvalidRequest, NotFound, RejectedError, TransientError
from refundflow.ids import derive_refund_id
from refundflow.models import ReturnStatus
from refundflow.platforms.sap.connector import SapBooks
from refundflow.platforms.sap.inbound import SapInbound, basic_authorization
from refundflow.ports import ReturnNews
from tests.platforms.sap.conftest import SecretStore, make_books
from tests.support.servers import DeliveryRecorder, serve_wsgi

SAMPLE = Path(__file__).resolve().parents[3] / "events" / "sap" / "business_events" / "customer_return_changed.json"
SECRET = {"username": "EVENT_MESH_WEBHOOK", "passwords": ["old-password", "new-password"]}
REFUND_ID = derive_refund_id("shop", "order-1001")


def event(number: str = "60100001", event_type: str = RETURN_CHANGED, **extra: Any) -> bytes:
    body = {
        "specversion": "1.0",
        "type": event_type,
        "source": "/default/sap.s4.beh/0M4N8N0",
        "id": "5e0b4a5c-0d7e-4a8e-9c55-3a1b2c3d4e5f",
        "time": "2026-12-06T09:15:02Z",
        "datacontenttype": "application/json",
        "data": {"CustomerReturn": number},
        **extra,
    }
    return json.dumps(body).encode()


def headers(password: str, username: str = "EVENT_MESH_WEBHOOK") -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": basic_authorization(username, password)}


# ------------------------------------------------------------------ intake's verification


@pytest.mark.parametrize("password", ["old-password", "new-password"])
def test_either_password_of_a_rotation_verifies_and_the_event_names_the_customer_return(password: str) -> None:
    delivery = SapInbound().verify(headers(password), event(), SECRET)
    assert [(news.return_id, news.event_id, news.event_type) for news in delivery.returns] == [
        ("60100001", "5e0b4a5c-0d7e-4a8e-9c55-3a1b2c3d4e5f", RETURN_CHANGED)
    ]
    assert delivery.returns[0].occurred_at == datetime(2026, 12, 6, 9, 15, 2, tzinfo=UTC)
    assert delivery.events == []
    assert delivery.tickets == []


@pytest.mark.parametrize(
    "event_type",
    [
        "sap.s4.beh.customerreturn.v1.CustomerReturn.Created.v1",
        "sap.s4.beh.customerReturn.v1.CustomerReturn.ItemChanged.v1",
    ],
)
def test_every_customer_return_event_names_its_return_whatever_the_namespace_case(event_type: str) -> None:
    # The exact spelling of the namespace is not on a public page: both spellings seen in the wild are news
    delivery = SapInbound().verify(headers("new-password"), event(event_type=event_type), SECRET)
    assert [(news.return_id, news.event_type) for news in delivery.returns] == [("60100001", event_type)]


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        ({}, "signature_missing"),
        ({"Authorization": "Bearer abc"}, "signature_missing"),
        ({"Authorization": "Basic !!!"}, "signature_invalid"),
        (headers("wrong-password"), "signature_invalid"),
        (headers("new-password", username="SOMEONE_ELSE"), "signature_invalid"),
    ],
)
def test_missing_wrong_or_malformed_credentials_are_refused(sent: dict[str, str], code: str) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        SapInbound().verify(sent, event(), SECRET)
    assert refused.value.code == code


def test_without_configured_credentials_nothing_verifies() -> None:
    with pytest.raises(AuthenticationFailed):
        SapInbound().verify(headers("new-password"), event(), {"username": "EVENT_MESH_WEBHOOK", "passwords": []})


def test_other_business_events_are_acknowledged_and_carry_no_news() -> None:
    other = event(event_type="sap.s4.beh.salesorder.v1.SalesOrder.Changed.v1")
    delivery = SapInbound().verify(headers("new-password"), other, SECRET)
    assert delivery.returns == []
    assert delivery.answer.status == 200


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        json.dumps({"type": RETURN_CHANGED, "id": "1", "data": {"CustomerReturn": "1"}}).encode(),  # no specversion
        event(number="6010000'1"),
        event(data={}),
    ],
)
def test_a_verified_body_that_is_not_a_customer_return_event_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        SapInbound().verify(headers("new-password"), body, SECRET)


def test_the_sample_event_is_a_customer_return_event() -> None:
    delivery = SapInbound().verify(headers("old-password"), SAMPLE.read_bytes(), SECRET)
    assert [news.return_id for news in delivery.returns] == ["60100001"]


def test_returns_news_goes_to_the_books_function_as_apply_return_news() -> None:
    news = ReturnNews(platform="sap", event_id="e1", return_id="60100001", event_type=RETURN_CHANGED)
    assert LambdaNewsForwarder("prod-").function_name("sap", news) == "prod-books-sap"
    assert news_payload("sap", news)["operation"] == "apply_return_news"


# ------------------------------------------------------------------ the books function reads the return


def test_a_return_not_received_yet_has_reached_no_step(books: SapBooks, sandbox: SapSimulator) -> None:
    number = sandbox.create_customer_return(REFUND_ID)
    found = books.read_return(number)
    assert (found.return_id, found.refund_id, found.status) == (number, REFUND_ID, None)


def test_the_goods_receipt_makes_it_received_then_its_completion_closed(books: SapBooks, sandbox: SapSimulator) -> None:
    number = sandbox.create_customer_return(REFUND_ID)
    changed = sandbox.post_goods_receipt(number)
    received = books.read_return(number)
    assert (received.refund_id, received.status) == (REFUND_ID, ReturnStatus.RECEIVED)
    milliseconds = int(changed["LastChangeDateTime"].removeprefix("/Date(").split("+")[0])
    assert received.occurred_at == datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    sandbox.complete_return(number)
    assert books.read_return(number).status is ReturnStatus.CLOSED


def test_the_refund_id_is_read_from_the_configured_field(
    served: tuple[SapSimulator, str], sandbox: SapSimulator, secret: SecretStore
) -> None:
    number = sandbox.create_customer_return(REFUND_ID, field="SDDocumentReason")
    default_field = make_books(served[1], secret)
    assert default_field.read_return(number).refund_id is None  # PurchaseOrderByCustomer is empty
    configured = make_books(served[1], secret, return_refund_field="SDDocumentReason")
    assert configured.read_return(number).refund_id == REFUND_ID


def test_a_reference_that_is_not_a_refund_id_names_no_refund(books: SapBooks, sandbox: SapSimulator) -> None:
    number = sandbox.create_customer_return("PO-4711")
    sandbox.post_goods_receipt(number)
    found = books.read_return(number)
    assert (found.refund_id, found.status) == (None, ReturnStatus.RECEIVED)


def test_an_unknown_return_is_not_found(books: SapBooks, sandbox: SapSimulator) -> None:
    with pytest.raises(NotFound):
        books.read_return("60199999")
    with pytest.raises(NotFound):
        books.read_return("../x")
    assert not any("A_CustomerReturn('../x')" in seen["path"] for seen in sandbox.requests_seen)


def test_the_read_needs_the_communication_user(
    served: tuple[SapSimulator, str], sandbox: SapSimulator, secret: SecretStore
) -> None:
    number = sandbox.create_customer_return(REFUND_ID)
    secret.value["password"] = "not-the-password"
    with pytest.raises(RejectedError):
        make_books(served[1], secret).read_return(number)


# ------------------------------------------------------------------ the simulator's webhook subscription


def test_the_goods_receipt_pushes_the_business_event_that_intake_verifies(sandbox: SapSimulator) -> None:
    receiver = DeliveryRecorder()
    with serve_wsgi(receiver) as url:
        sandbox.send_webhooks_to(f"{url}/webhooks/sap")
        number = sandbox.create_customer_return(REFUND_ID)
        sandbox.post_goods_receipt(number)
        receiver.wait_until(lambda deliveries: len(deliveries) == 1)
    sent_headers, body = receiver.deliveries[0]
    delivery = SapInbound().verify(sent_headers, body, sandbox.local_secrets()["verification"])
    assert [(news.return_id, news.event_type) for news in delivery.returns] == [(number, RETURN_CHANGED)]
    with pytest.raises(AuthenticationFailed):
        SapInbound().verify(sent_headers, body, {"username": "EVENT_MESH_WEBHOOK", "passwords": ["rotated-away"]})


def test_the_control_routes_create_and_receive_a_return(
    served: tuple[SapSimulator, str], sandbox: SapSimulator
) -> None:
    url = served[1]
    created = requests.post(f"{url}/_control/customer-returns", json={"refund_id": REFUND_ID}, timeout=5)
    assert created.status_code == 201
    number = created.json()["CustomerReturn"]
    received = requests.post(f"{url}/_control/customer-returns/{number}/goods-receipt", timeout=5)
    assert received.json()["OverallDeliveryStatus"] == "C"
    assert requests.post(f"{url}/_control/customer-returns/1/goods-receipt", timeout=5).status_code == 404
    assert requests.post(f"{url}/_control/customer-returns", json={"refund": 1}, timeout=5).status_code == 400


def test_a_control_return_of_invoiced_goods_is_billed_once_its_goods_are_received(
    served: tuple[SapSimulator, str], sandbox: SapSimulator
) -> None:
    url = served[1]
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    body = {"refund_id": REFUND_ID, "invoice": invoice_id, "amount_minor": 2_500}
    created = requests.post(f"{url}/_control/customer-returns", json=body, timeout=5)
    number = created.json()["CustomerReturn"]
    assert sandbox.credit_memos() == []
    requests.post(f"{url}/_control/customer-returns/{number}/goods-receipt", timeout=5).raise_for_status()
    (memo,) = sandbox.credit_memos()
    assert memo["TotalGrossAmount"] == "25.00"
    for wrong in (
        {**body, "invoice": "1"},
        {"refund_id": REFUND_ID, "invoice": invoice_id},
        {**body, "amount_minor": 0},
    ):
        assert requests.post(f"{url}/_control/customer-returns", json=wrong, timeout=5).status_code == 400


def test_the_simulator_answers_the_customer_return_like_sap_gateway(
    served: tuple[SapSimulator, str], sandbox: SapSimulator
) -> None:
    url = f"{served[1]}/sap/opu/odata/sap/API_CUSTOMER_RETURN_SRV/A_CustomerReturn('60199999')"
    assert requests.get(url, timeout=5).status_code == 401  # no communication user
    unknown = requests.get(url, auth=(sandbox.username, sandbox.password), timeout=5)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "/IWBEP/CM_MGW_RT/020"


def test_sap_unavailable_while_reading_the_return_is_transient(books: SapBooks, sandbox: SapSimulator) -> None:
    number = sandbox.create_customer_return(REFUND_ID)
    sandbox.add_fault(FaultRule(method="GET", path=r"A_CustomerReturn", status=503, times=1))
    with pytest.raises(TransientError):
        books.read_return(number)
    assert books.read_return(number).refund_id == REFUND_ID  # the redelivered news reads it again
