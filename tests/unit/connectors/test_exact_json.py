"""Exact JSON for the books systems: one writer and reader for all of them (connectors.exact_json)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from refundflow.connectors.exact_json import NotExactJson, dumps, loads


def test_amounts_go_out_and_come_back_exactly() -> None:
    text = dumps({"Lines": [{"Amount": Decimal("12.340"), "Qty": 1, "Note": None, "Tax": True}]}, platform="Xero")
    assert text == '{"Lines":[{"Amount":12.340,"Qty":1,"Note":null,"Tax":true}]}'
    assert loads(text.encode()) == {"Lines": [{"Amount": Decimal("12.340"), "Qty": 1, "Note": None, "Tax": True}]}
    assert loads(b"") is None


@pytest.mark.parametrize("value", [0.1, Decimal("NaN"), Decimal("Infinity"), {1, 2}])
def test_what_has_no_exact_json_form_is_refused_naming_the_system(value: object) -> None:
    with pytest.raises(NotExactJson) as refused:
        dumps({"Amount": value}, platform="NetSuite")
    # one error both ways callers have always caught it
    assert isinstance(refused.value, TypeError)
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    ("body", "why"),
    [(b'{"Amount": NaN}', "not a JSON number"), (b'{"Amount": -Infinity}', "not a JSON number"), (b"{", "Expecting")],
)
def test_what_is_not_exact_json_is_not_read(body: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        loads(body)
