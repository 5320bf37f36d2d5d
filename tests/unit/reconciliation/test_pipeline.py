"""The state machine's inputs: the S3 event names a settlement we parse, each batch item is a line record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refundflow.reconciliation.pipeline import UnreadableSettlement, source_of
from refundflow.reconciliation.providers import parse_stripe
from refundflow.reconciliation.records import LineKind, line_from_json, line_to_json

EVENTS = Path(__file__).resolve().parents[3] / "events" / "settlement"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "settlement"


def test_the_sample_s3_event_names_a_stripe_settlement() -> None:
    event = json.loads((EVENTS / "s3_settlement_object_created.json").read_text())
    assert source_of(event["detail"]["object"]["key"]) == "stripe"


@pytest.mark.parametrize("key", ["settlement/unknown/x.csv", "other/stripe/x.csv", "settlement/stripe"])
def test_files_outside_a_known_settlement_prefix_are_refused(key: str) -> None:
    with pytest.raises(UnreadableSettlement):
        source_of(key)


def test_the_sample_batch_items_are_line_records() -> None:
    batch = json.loads((EVENTS / "match_settlement_batch.json").read_text())
    lines = [line_from_json(item) for item in batch["Items"]]
    assert [(line.kind, line.amount, line.fee) for line in lines] == [
        (LineKind.REFUND, 2500, 0),
        (LineKind.FEE, 0, 150),
    ]
    assert set(batch["BatchInput"]) == {"file", "source", "correlation_id"}


def test_every_parsed_line_survives_its_json_lines_record() -> None:
    with open(FIXTURES / "stripe_payout_reconciliation.csv", newline="", encoding="utf-8") as stream:
        lines = list(parse_stripe(stream))
    assert [line_from_json(json.loads(json.dumps(line_to_json(line)))) for line in lines] == [
        line._replace(description="") for line in lines
    ]


def test_a_record_with_a_float_amount_is_refused() -> None:
    record = line_to_json(line_from_json(json.loads((EVENTS / "match_settlement_batch.json").read_text())["Items"][0]))
    record["amount"] = 25.0
    with pytest.raises(ValueError, match="not an integer"):
        line_from_json(record)
