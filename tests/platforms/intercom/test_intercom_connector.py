"""IntercomConversations against the Intercom simulator over real HTTP: the conversation read with its customer,
the write-back (attribute, then the note with its marker), the marker found again, and Intercom's errors."""

from __future__ import annotations

import time

import pytest

from local.simulators.base import FaultRule
from local.simulators.intercom import IntercomSimulator
from refundflow.errors import NotFound, OutcomeUnknownError, RejectedError, TransientError
from refundflow.platforms.intercom.connector import IntercomConversations
from refundflow.ports import TicketUpdate
from refundflow.status import RefundStatus
from tests.platforms.intercom.conftest import connector_for
from tests.support.servers import serve_wsgi

REQUEST = {
    "payment_provider": "stripe",
    "payment_id": "pi_3PqIntercom000001",
    "reason": "damaged",
    "amount": "49.90",
    "currency": "EUR",
    "customer_email": "ada@example.com",
    "customer_name": "Ada Lovelace",
    "approver_role": "team_lead",
}


def update(marker: str = "refundflow:evt-1", label: str = "issued") -> TicketUpdate:
    return TicketUpdate(
        marker=marker,
        refund_id="rf_1",
        event="RefundIssued",
        status=RefundStatus.REFUNDED,
        label=label,
        text=f"Refund issued: 49.90 EUR. Refund rf_1, status REFUNDED. stripe refund re_1 <b>. [{marker}]",
    )


def test_a_conversation_is_read_with_its_attributes_assignees_tags_and_customer(
    simulator: IntercomSimulator, intercom: IntercomConversations
) -> None:
    # GIVEN a conversation tagged refund_approved by its team lead
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.agent_action(conversation_id, "approve")
    # WHEN the connector reads it
    conversation = intercom.read_ticket(conversation_id)
    # THEN it is Intercom's conversation plus the contact the conversation names, read from /contacts
    assert conversation["id"] == conversation_id
    assert conversation["custom_attributes"]["payment_id"] == "pi_3PqIntercom000001"
    assert conversation["team_assignee_id"] == 5017691
    assert [tag["name"] for tag in conversation["tags"]["tags"]] == ["refund_approved"]
    assert conversation["customer"]["email"] == "ada@example.com"
    paths = [seen["path"] for seen in simulator.requests_seen]
    contact_id = conversation["contacts"]["contacts"][0]["id"]
    assert paths == [f"/conversations/{conversation_id}", f"/contacts/{contact_id}"]


def test_every_request_carries_the_bearer_token_and_the_pinned_version(
    simulator: IntercomSimulator, intercom: IntercomConversations
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    intercom.read_ticket(conversation_id)
    intercom.write_back(conversation_id, update())
    headers = [seen["headers"] for seen in simulator.requests_seen]
    assert {header["Intercom-Version"] for header in headers} == {"2.16"}
    assert all(header["Authorization"].startswith("Bearer ") for header in headers)


def test_a_write_back_sets_the_attribute_then_adds_an_internal_note_by_the_tokens_admin(
    simulator: IntercomSimulator, intercom: IntercomConversations
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    # WHEN an update is written
    intercom.write_back(conversation_id, update())
    # THEN the status attribute is set and a note (not a reply to the customer) carries the text, HTML-escaped
    view = simulator.ticket_view(conversation_id)
    assert view["labels"] == ["issued"]
    assert view["public"] == []
    [note] = view["notes"]
    assert "[refundflow:evt-1]" in note
    assert "re_1 <b>." in note  # as the teammate reads it
    [part] = view["ticket"]["conversation_parts"]["conversation_parts"]
    assert part["body"].startswith("<p>Refund issued")
    assert "re_1 &lt;b&gt;." in part["body"]  # the text went as escaped HTML, never as markup
    assert part["author"]["id"] == "991267001"  # GET /me: the token's admin
    methods = [(seen["method"], seen["path"]) for seen in simulator.requests_seen]
    assert methods == [
        ("PUT", f"/conversations/{conversation_id}"),
        ("GET", "/me"),
        ("POST", f"/conversations/{conversation_id}/reply"),
    ]


def test_a_configured_admin_writes_the_notes_without_asking_me(served: tuple[IntercomSimulator, str]) -> None:
    simulator, url = served
    conversation_id = simulator.seed_ticket(REQUEST)
    connector_for(url, admin_id="991267002").write_back(conversation_id, update())
    part = simulator.ticket_view(conversation_id)["ticket"]["conversation_parts"]["conversation_parts"][-1]
    assert part["author"]["id"] == "991267002"


def test_has_update_finds_the_marker_of_a_note_written_before(
    simulator: IntercomSimulator, intercom: IntercomConversations
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    assert intercom.has_update(conversation_id, "refundflow:evt-1") is False
    intercom.write_back(conversation_id, update())
    assert intercom.has_update(conversation_id, "refundflow:evt-1") is True
    assert intercom.has_update(conversation_id, "refundflow:evt-2") is False


def test_a_rate_limit_becomes_a_transient_error_with_the_wait_until_the_window_resets(
    simulator: IntercomSimulator, intercom: IntercomConversations
) -> None:
    # GIVEN Intercom answers 429 with X-RateLimit-Reset 7 seconds ahead and no Retry-After
    conversation_id = simulator.seed_ticket(REQUEST)
    reset = str(int(time.time()) + 7)
    simulator.add_fault(FaultRule(method="PUT", status=429, headers={"X-RateLimit-Reset": reset}))
    # WHEN a write-back is attempted / THEN it is to be retried after about 7 seconds
    with pytest.raises(TransientError) as error:
        intercom.write_back(conversation_id, update())
    assert error.value.code == "rate_limited"
    assert error.value.retry_after_seconds is not None
    assert 5.0 <= error.value.retry_after_seconds <= 7.0
    assert "rate_limit_exceeded" in str(error.value)


def test_the_simulators_own_rate_limit_is_read_the_same_way() -> None:
    # GIVEN a workspace allowing 2 calls per 10-second window, 4 seconds before the window resets
    clock = 1_800_000_006.0
    simulator = IntercomSimulator(rate_limit=2, now=lambda: clock)
    conversation_id = simulator.seed_ticket(REQUEST)
    with serve_wsgi(simulator) as url:
        intercom = connector_for(url)
        intercom._clock = lambda: clock
        intercom.read_ticket(conversation_id)  # two calls: the conversation and its contact
        # WHEN a third call comes in the same window / THEN it waits until the window resets
        with pytest.raises(TransientError) as error:
            intercom.read_ticket(conversation_id)
    assert error.value.retry_after_seconds == 4.0


def test_the_injected_transient_fault_carries_a_reset_time(
    simulator: IntercomSimulator, intercom: IntercomConversations
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.inject_fault("read_ticket", "transient")
    with pytest.raises(TransientError) as error:
        intercom.read_ticket(conversation_id)
    assert error.value.retry_after_seconds is not None


def test_an_unknown_conversation_is_not_found(intercom: IntercomConversations) -> None:
    with pytest.raises(NotFound):
        intercom.read_ticket("999999999")
    with pytest.raises(NotFound):
        intercom.has_update("999999999", "refundflow:evt-1")


def test_a_write_to_a_conversation_gone_is_not_found_as_the_port_says(intercom: IntercomConversations) -> None:
    with pytest.raises(NotFound) as gone:
        intercom.write_back("999999999", update())
    assert gone.value.code == "resource_missing"


def test_a_server_error_on_a_read_is_transient_and_on_a_write_an_unknown_outcome(
    simulator: IntercomSimulator, intercom: IntercomConversations
) -> None:
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.inject_fault("read_ticket", "server_error")
    with pytest.raises(TransientError):
        intercom.read_ticket(conversation_id)
    simulator.add_fault(FaultRule(method="POST", path=r"/reply$", status=500))
    with pytest.raises(OutcomeUnknownError):
        intercom.write_back(conversation_id, update())


def test_a_note_written_whose_answer_was_lost_is_found_by_its_marker(
    simulator: IntercomSimulator, intercom: IntercomConversations
) -> None:
    # GIVEN the note is written but its answer comes too late for the client
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.add_fault(FaultRule(method="POST", path=r"/reply$", status=None, when="after", lose_answer=True))
    with pytest.raises(OutcomeUnknownError):
        intercom.write_back(conversation_id, update())
    # THEN has_update finds it, so it is not written twice
    assert intercom.has_update(conversation_id, "refundflow:evt-1") is True


def test_a_refused_token_is_a_final_refusal_in_intercoms_words(served: tuple[IntercomSimulator, str]) -> None:
    simulator, url = served
    conversation_id = simulator.seed_ticket(REQUEST)
    with pytest.raises(RejectedError) as refused:
        connector_for(url, token="not-the-token").read_ticket(conversation_id)
    assert refused.value.code == "provider_authentication_failed"
    assert "Access Token Invalid" in str(refused.value)


def test_an_attribute_the_workspace_has_not_defined_is_refused_with_intercoms_reason(
    served: tuple[IntercomSimulator, str],
) -> None:
    simulator, url = served
    conversation_id = simulator.seed_ticket(REQUEST)
    intercom = connector_for(url)
    intercom.status_attribute = "refund_state_typo"
    with pytest.raises(RejectedError) as refused:
        intercom.write_back(conversation_id, update())
    assert refused.value.code == "intercom_parameter_invalid"
    assert simulator.ticket_view(conversation_id)["notes"] == []


@pytest.mark.parametrize("conversation_id", ["47/11", "٤٧١١", "", "../me"])
def test_an_id_that_is_not_plain_digits_never_reaches_intercom(
    simulator: IntercomSimulator, intercom: IntercomConversations, conversation_id: str
) -> None:
    with pytest.raises(RejectedError):
        intercom.read_ticket(conversation_id)
    with pytest.raises(RejectedError):
        intercom.write_back(conversation_id, update())
    assert simulator.requests_seen == []


def test_a_lost_answer_to_the_attribute_leaves_no_marker_so_the_update_is_written_again(
    simulator: IntercomSimulator, intercom: IntercomConversations
) -> None:
    # GIVEN the attribute is set but its answer never reaches the client
    conversation_id = simulator.seed_ticket(REQUEST)
    simulator.add_fault(FaultRule(method="PUT", status=None, when="after", lose_answer=True))
    with pytest.raises(OutcomeUnknownError):
        intercom.write_back(conversation_id, update())
    # THEN no note carries the marker, and writing again completes the update once
    assert intercom.has_update(conversation_id, "refundflow:evt-1") is False
    intercom.write_back(conversation_id, update())
    view = simulator.ticket_view(conversation_id)
    assert (len(view["notes"]), view["labels"]) == (1, ["issued"])
