"""Salesforce Outbound Messages (SOAP 1.1 ``notifications``): the endpoint URL's token, the org, the XML read
safely (no DOCTYPE, UTF-8, bounded), one news per notification and the SOAP ack."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import pytest

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.platforms.salesforce import outbound_message
from refundflow.platforms.salesforce.ids import checksum
from refundflow.platforms.salesforce.inbound import SalesforceInbound
from refundflow.ports import InboundDelivery

TOKEN = "outbound-message-token-0123456789abcdef"
NEXT_TOKEN = "outbound-message-next-token-0123456789ab"
ORG = "00D5e000000RfSiEAK"
ACTION = "04k5e000000CaRkAAK"
SESSION = "00D5e000000RfSi!AQ0AQSessionSecretThatIsIgnored"
VERIFICATION: dict[str, Any] = {"shared_secrets": [], "organization_id": ORG, "outbound_message_tokens": [TOKEN]}
XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


def case_id(number: int) -> str:
    id15 = f"5005e{number:010d}"
    return id15 + checksum(id15)


def notification_id(number: int) -> str:
    id15 = f"04l5e{number:010d}"
    return id15 + checksum(id15)


def notification(number: int, *, kind: str = "sf:Case", **fields: str) -> str:
    values = {"Id": case_id(number), "LastModifiedDate": "2026-12-06T20:15:00.000Z", **fields}
    shown = "".join(f"<sf:{name}>{escape(value)}</sf:{name}>" for name, value in values.items())
    return (
        f"<Notification><Id>{notification_id(number)}</Id>"
        f'<sObject xsi:type="{kind}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{shown}</sObject>'
        "</Notification>"
    )


def message(*notifications: str, org: str = ORG, declaration: str = '<?xml version="1.0" encoding="UTF-8"?>') -> bytes:
    """An Outbound Message as Salesforce sends it (the WSDL's ``notifications``)."""
    items = "".join(notifications) if notifications else notification(1)
    return (
        f"{declaration}"
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>{ACTION}</ActionId><SessionId>{SESSION}</SessionId>"
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/67.0/00D5e000000RfSi</EnterpriseUrl>"
        "<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/67.0/00D5e000000RfSi</PartnerUrl>"
        f"{items}"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def deliver(body: bytes, token: str | None = TOKEN, verification: dict[str, Any] | None = None) -> InboundDelivery:
    query = {"token": token} if token is not None else {}
    secret = verification if verification is not None else VERIFICATION
    return SalesforceInbound().verify_request(XML_HEADERS, body, secret, query)


def test_a_good_message_is_news_about_its_case_and_is_acknowledged() -> None:
    delivered = deliver(message())
    [news] = delivered.tickets
    assert news.platform == "salesforce"
    assert news.ticket_id == case_id(1)
    assert news.event_id == f"notification:{notification_id(1)}"
    assert news.occurred_at is not None
    assert news.occurred_at.isoformat() == "2026-12-06T20:15:00+00:00"
    assert news.payload["organizationId"] == ORG
    assert news.payload["sObject"]["Id"] == case_id(1)
    # The answer is the SOAP notificationsResponse with Ack true, as text/xml
    assert delivered.answer.content_type.startswith("text/xml")
    ack = ElementTree.fromstring(delivered.answer.body)
    assert ack.findtext(".//{http://soap.sforce.com/2005/09/outbound}Ack") == "true"


def test_the_session_id_is_never_kept() -> None:
    [news] = deliver(message()).tickets
    assert SESSION not in repr(news.model_dump())


def test_several_notifications_are_several_news_in_order() -> None:
    delivered = deliver(message(notification(1), notification(2), notification(3)))
    assert [news.ticket_id for news in delivered.tickets] == [case_id(1), case_id(2), case_id(3)]
    assert len({news.event_id for news in delivered.tickets}) == 3


def test_a_redelivery_keeps_its_event_ids() -> None:
    first = deliver(message(notification(1), notification(2)))
    again = deliver(message(notification(1), notification(2), declaration=""))
    assert [news.event_id for news in first.tickets] == [news.event_id for news in again.tickets]


def test_either_token_verifies_while_rotating() -> None:
    both = {**VERIFICATION, "outbound_message_tokens": [TOKEN, NEXT_TOKEN]}
    assert deliver(message(), TOKEN, both).tickets
    assert deliver(message(), NEXT_TOKEN, both).tickets


@pytest.mark.parametrize("token", [None, "", TOKEN[:-1] + "x", NEXT_TOKEN, TOKEN + " "])
def test_a_missing_or_other_token_is_refused_without_echoing_it(token: str | None) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        deliver(message(), token)
    assert not token or token not in str(refused.value)


def test_the_token_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(AuthenticationFailed):
        deliver(b"<not xml", "wrong-token-0123456789abcdefghij")


def test_a_short_configured_token_never_matches() -> None:
    with pytest.raises(AuthenticationFailed):
        deliver(message(), "short", {**VERIFICATION, "outbound_message_tokens": ["short"]})


def test_the_callouts_shared_secret_is_not_an_outbound_message_token() -> None:
    with pytest.raises(AuthenticationFailed):
        deliver(message(), TOKEN, {"shared_secrets": [TOKEN], "organization_id": ORG})


@pytest.mark.parametrize("org", ["00D5e000000OtHeRAAA", "00D5e000000RfSiXXX", "0055e000000RfSiEAK", ""])
def test_a_message_from_another_org_is_refused(org: str) -> None:
    with pytest.raises(AuthenticationFailed):
        deliver(message(org=org))


def test_without_a_configured_org_every_message_is_refused() -> None:
    with pytest.raises(AuthenticationFailed):
        deliver(message(), TOKEN, {"outbound_message_tokens": [TOKEN]})


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>'
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&xxe;</soapenv:Body>'
    b"</soapenv:Envelope>"
)


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        message(declaration='<?xml version="1.0"?><!DOCTYPE soapenv:Envelope>'),
        message(declaration='<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.com/x.dtd">'),
    ],
    ids=["billion_laughs", "external_entity", "doctype", "external_dtd"],
)
def test_a_doctype_is_refused_before_any_entity_is_read(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as refused:
        deliver(body)
    assert "DOCTYPE" in refused.value.message


@pytest.mark.parametrize(
    "body",
    [
        message(declaration='<?xml version="1.0" encoding="ISO-8859-1"?>'),
        message(notification(1, Subject="Rückerstattung")).replace(
            "Rückerstattung".encode(), "Rückerstattung".encode("latin-1")
        ),
        "\ufeff".encode("utf-16-le")
        + message(declaration='<?xml version="1.0" encoding="UTF-16"?>').decode().encode("utf-16-le"),
    ],
    ids=["declared_latin1", "latin1_bytes", "utf16"],
)
def test_a_message_that_is_not_utf8_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        deliver(body)


def test_utf8_text_is_read_as_sent() -> None:
    [news] = deliver(message(notification(1, Subject="Rückerstattung & <Gutschrift>"))).tickets
    assert news.payload["sObject"]["Subject"] == "Rückerstattung & <Gutschrift>"


def test_a_message_nested_too_deep_is_refused() -> None:
    deep = "<sf:a>" * 20 + "x" + "</sf:a>" * 20
    body = message().replace(b"<sf:Id>", f"{deep}<sf:Id>".encode())
    with pytest.raises(InvalidRequest):
        deliver(body)


def test_a_message_over_the_size_bound_is_refused() -> None:
    filler = "x" * outbound_message.MAX_MESSAGE_BYTES
    with pytest.raises(InvalidRequest):
        deliver(message(notification(1, Description=filler)))


def test_more_than_a_hundred_notifications_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        deliver(message(*(notification(number) for number in range(1, 102))))


@pytest.mark.parametrize(
    "body",
    [
        message(notification(1, kind="sf:Account")),
        message(notification(1, Id="0015e00000ZkM3hAAF")),
        message(notification(1).replace(notification_id(1), "../" + notification_id(1)[3:])),
        message(notification(1).replace(f"<Id>{notification_id(1)}</Id>", "")),
        message().replace(b"<Notification>", b"<Other>").replace(b"</Notification>", b"</Other>"),
        message().replace(b"http://soap.sforce.com/2005/09/outbound", b"urn:something-else"),
        b"<soapenv:Envelope",
        b"",
    ],
    ids=[
        "account",
        "not_a_case_id",
        "odd_notification_id",
        "no_notification_id",
        "no_notification",
        "other_ns",
        "broken",
        "empty",
    ],
)
def test_a_message_that_is_not_an_outbound_message_of_cases_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        deliver(body)


def test_a_json_body_is_still_the_flow_callout() -> None:
    """The callout path is untouched: JSON with its header secret, no token needed."""
    secret = "salesforce-inbound-secret-0123456789abcdef"
    body = f'{{"caseId": "{case_id(1)}", "organizationId": "{ORG}"}}'.encode()
    headers = {"Content-Type": "application/json", "X-Refundflow-Secret": secret}
    delivered = SalesforceInbound().verify_request(headers, body, {"shared_secrets": [secret]}, {})
    assert [news.ticket_id for news in delivered.tickets] == [case_id(1)]
    assert delivered.answer.content_type == "application/json"
