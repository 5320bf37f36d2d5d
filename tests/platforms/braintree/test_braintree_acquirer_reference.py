"""A Braintree refund's own acquirer reference number (ARN): not in the GraphQL API, read from the XML gateway's
``Transaction.find`` (``GET /merchants/{id}/transactions/{legacy id}``) by the acquirer reference schedule only, and
only when the secret names the merchant id."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.simulators.braintree import (
    DEFAULT_MERCHANT_ID,
    DEFAULT_PRIVATE_KEY,
    DEFAULT_PUBLIC_KEY,
    US_BANK_ACCOUNT,
    BraintreeSimulator,
)
from refundflow.connectors.http import HttpClient
from refundflow.errors import NotFound, RejectedError, TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.braintree.connector import BraintreeRefundProvider, xml_reference
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.platforms.braintree.conftest import Served


def provider(
    url: str, *, merchant_id: str | None = DEFAULT_MERCHANT_ID, private_key: str = DEFAULT_PRIVATE_KEY
) -> BraintreeRefundProvider:
    endpoint = f"{url}/graphql"
    return BraintreeRefundProvider(
        public_key=DEFAULT_PUBLIC_KEY,
        private_key=private_key,
        api_base=endpoint,
        merchant_id=merchant_id,
        gateway_base=url,
        http=HttpClient(platform="braintree", base_url=endpoint, timeout=(5.0, 30.0)),
    )


def refunded(
    simulator: BraintreeSimulator, connector: BraintreeRefundProvider, **seed: Any
) -> tuple[PaymentReference, str]:
    seeded = simulator.seed_payment(5_000, "EUR", **seed)
    payment = PaymentReference(provider=PaymentProvider.BRAINTREE, payment_id=seeded["payment_id"])
    refund_id = derive_refund_id("braintree-arn", seeded["payment_id"])
    made = connector.create_refund(
        ProviderRefundRequest(
            refund_id=refund_id,
            payment=payment,
            amount=Money.of(2_000, "EUR"),
            reason=RefundReason.PRODUCT_RETURN,
            idempotency_key=idempotency_key(refund_id, "refund"),
        )
    )
    return payment, made.provider_refund_id


def gateway_reads(simulator: BraintreeSimulator) -> list[dict[str, Any]]:
    return [seen for seen in simulator.requests_seen if seen["path"].startswith("/merchants/")]


def test_the_refunds_own_arn_is_read_from_the_xml_gateway_once_assigned(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    connector = provider(url)
    # GIVEN a card refund Braintree took: the gateway shows its ARN as nil
    payment, legacy_id = refunded(simulator, connector)
    before = connector.get_refund_with_reference(legacy_id, payment)
    assert (before.status, before.acquirer_reference) == (ProviderRefundStatus.SUCCEEDED, None)
    # WHEN the network assigns it (no webhook says so)
    answer = requests.post(f"{url}/_control/refunds/{legacy_id}/acquirer-reference", timeout=5)
    assert answer.status_code == 200
    arn = answer.json()["acquirer_reference_number"]
    # THEN the schedule's read has it, sent as the SDKs send it; the workflow's own poll never asks the gateway
    assert connector.get_refund_with_reference(legacy_id, payment).acquirer_reference == arn
    first = gateway_reads(simulator)[0]
    assert len(gateway_reads(simulator)) == 2
    assert first["path"] == f"/merchants/{DEFAULT_MERCHANT_ID}/transactions/{legacy_id}"
    assert (first["headers"]["Accept"], first["headers"]["X-Apiversion"]) == ("application/xml", "6")
    assert connector.get_refund(legacy_id, payment).acquirer_reference is None
    assert len(gateway_reads(simulator)) == 2
    # AND it is assigned once
    assert requests.post(f"{url}/_control/refunds/{legacy_id}/acquirer-reference", timeout=5).status_code == 409


def test_without_a_merchant_id_the_gateway_is_not_asked(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    connector = provider(url, merchant_id=None)
    payment, legacy_id = refunded(simulator, connector)
    simulator.assign_acquirer_reference(legacy_id)
    assert connector.get_refund_with_reference(legacy_id, payment).acquirer_reference is None
    assert gateway_reads(simulator) == []


def test_a_bank_account_refund_gets_no_arn(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    connector = provider(url)
    _, legacy_id = refunded(simulator, connector, instrument=US_BANK_ACCOUNT)
    with pytest.raises(ValueError, match="no reference"):
        simulator.assign_acquirer_reference(legacy_id)


def test_the_gateways_refusals_map_to_our_errors(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    _, legacy_id = refunded(simulator, provider(url))
    with pytest.raises(RejectedError) as wrong_merchant:
        provider(url, merchant_id="someoneelse")._refund_reference(legacy_id)
    assert wrong_merchant.value.code == "provider_permission_denied"
    with pytest.raises(NotFound):
        provider(url)._refund_reference("nosuchid")
    answer = requests.get(
        f"{url}/merchants/{DEFAULT_MERCHANT_ID}/transactions/{legacy_id}",
        auth=(DEFAULT_PUBLIC_KEY, DEFAULT_PRIVATE_KEY),
        headers={"Accept": "application/xml"},
        timeout=5,
    )
    assert answer.status_code == 426  # no X-ApiVersion: what the gateway asks an old client to upgrade with
    wrong_keys = requests.get(
        f"{url}/merchants/{DEFAULT_MERCHANT_ID}/transactions/{legacy_id}",
        auth=(DEFAULT_PUBLIC_KEY, "wrong"),
        headers={"Accept": "application/xml", "X-ApiVersion": "6"},
        timeout=5,
    )
    assert wrong_keys.status_code == 401


REFUND_XML = b"<transaction><id>abc12345</id><type>credit</type>%s</transaction>"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (b"<acquirer-reference-number>74123456789012345678901</acquirer-reference-number>", "74123456789012345678901"),
        (b'<acquirer-reference-number nil="true"/>', None),
        (b"<acquirer-reference-number>74 12</acquirer-reference-number>", None),
    ],
    ids=["assigned", "nil", "not-an-arn"],
)
def test_the_reference_is_read_from_the_refunds_xml(reference: bytes, expected: str | None) -> None:
    assert xml_reference(REFUND_XML % reference, "abc12345") == expected


@pytest.mark.parametrize(
    "body",
    [
        b"<transaction><id>other000</id><type>credit</type></transaction>",
        b"<transaction><id>abc12345</id><type>sale</type></transaction>",
        b"<html>maintenance</html>",
        b"not xml",
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><transaction><id>abc12345</id></transaction>',
    ],
    ids=["another-id", "a-sale", "not-a-transaction", "not-xml", "entities"],
)
def test_anything_but_the_refunds_own_xml_is_transient(body: bytes) -> None:
    with pytest.raises(TransientError):
        xml_reference(body, "abc12345")
