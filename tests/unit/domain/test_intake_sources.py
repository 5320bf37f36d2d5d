"""Intake trusts the source that signed a request, not the body: ``source.system`` must name the source whose
secret verified the delivery (issue 6, item 1)."""

from __future__ import annotations

import pytest

from refundflow.connectors.standard_webhooks import VerifiedSource
from refundflow.domain.intake import accept_refund_request
from refundflow.errors import Forbidden, NotFound
from refundflow.ids import derive_refund_id
from tests.support.fakes import TIMING, World, refund_request_body


def test_a_body_naming_another_source_than_the_signer_is_forbidden_and_nothing_stored(env: World) -> None:
    # GIVEN a request whose body says it comes from the returns portal, signed with the help desk's secret
    body = refund_request_body(reference="RMA-SPOOF", approved_by={"id": "nobody", "role": "finance"})
    assert body.source.system == "returns-portal"
    # WHEN it is accepted
    with pytest.raises(Forbidden) as caught:
        accept_refund_request(
            body,
            source=VerifiedSource("helpdesk"),
            delivery_id="dlv-spoof",
            recorder=env.recorder,
            starter=env.starter,
            timing=TIMING,
        )
    # THEN it is refused as a source mismatch: nothing stored, nothing started, nothing published
    assert caught.value.code == "source_mismatch"
    with pytest.raises(NotFound):
        env.repository.get(derive_refund_id("refund-requests", "returns-portal:RMA-SPOOF"))
    assert env.starter.calls == []
    assert env.publisher.events == []


def test_the_verified_source_is_recorded_with_the_request(env: World) -> None:
    # GIVEN a request signed by the source its body names WHEN accepted
    body = refund_request_body(reference="RMA-OK")
    accepted = accept_refund_request(
        body,
        source=VerifiedSource("returns-portal"),
        delivery_id="dlv-ok",
        recorder=env.recorder,
        starter=env.starter,
        timing=TIMING,
    )
    # THEN the audit trail's first entry names the source whose secret verified it
    first = env.repository.timeline(accepted.refund.refund_id)[0]
    assert first.details["verified_source"] == "returns-portal"
