"""The metrics the dashboard and alarms read: status changes by status, NEEDS_ATTENTION by reason, provider
and books calls, errors and latency per platform (EMF documents on stdout, as Lambda writes them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from refundflow.domain.books import update_invoice
from refundflow.errors import RejectedError, TransientError
from refundflow.metering import BOOKS, PROVIDER, meter
from refundflow.observability import DIMENSIONED_METRICS, metric_document
from refundflow.status import RefundStatus
from tests.support.domain import PAYMENT, eur
from tests.support.fakes import World
from tests.unit.domain.test_failures import fail, refunded


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    capsys.readouterr()

    def read() -> list[dict[str, Any]]:
        documents = []
        for line in capsys.readouterr().out.splitlines():
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if isinstance(document, dict) and "_aws" in document:
                documents.append(document)
        return documents

    return read


def values(documents: list[dict[str, Any]], name: str, dimension: str) -> list[tuple[str, float]]:
    """(dimension value, metric value) of every document publishing ``name`` with ``dimension``."""
    found = []
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        if directive["Dimensions"] == [["service", dimension]] and name in document:
            assert directive["Namespace"] == "Refundflow"
            assert document["service"] == "refundflow"
            found.append((document[dimension], document[name]))
    return found


def test_a_metric_document_is_emf_with_its_own_dimension_and_refuses_another() -> None:
    document = metric_document({"BooksCalls": 1, "BooksLatency": 12.5}, "platform", "xero", at_ms=1)
    assert document["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "BooksCalls", "Unit": "Count"},
        {"Name": "BooksLatency", "Unit": "Milliseconds"},
    ]
    assert (document["platform"], document["BooksLatency"]) == ("xero", 12.5)
    with pytest.raises(ValueError, match="RefundsByStatus"):
        metric_document({"RefundsByStatus": 1}, "platform", "xero", at_ms=1)
    with pytest.raises(ValueError, match="Unknown"):
        metric_document({"Unknown": 1}, "status", "x", at_ms=1)


def test_books_failing_then_refusing_counts_errors_by_reason_and_per_platform(env: World, published: Any) -> None:
    env.provider.add_payment(PAYMENT, eur(10_000))
    refund_id = refunded(env)
    books = meter(env.books, BOOKS, "xero")
    # GIVEN books that are down once, then refuse the credit note
    env.books.failures = [TransientError("Xero 503"), RejectedError("invoice is voided", platform="xero")]
    published()
    for error in (TransientError, RejectedError):
        with pytest.raises(error):
            update_invoice(refund_id, recorder=env.recorder, books=books)
        fail(env, refund_id, error.__name__)
    documents = published()
    # THEN every call to the books is counted and timed, and only the outage is an error (a refusal is an answer)
    calls = len(env.books.record_calls) + len(env.books.find_calls)
    assert len(env.books.record_calls) == 2
    assert values(documents, "BooksCalls", "platform") == [("xero", 1)] * calls
    errors = values(documents, "BooksErrors", "platform")
    assert len(errors) == calls
    assert sum(value for _, value in errors) == 1
    assert all(latency >= 0 for _, latency in values(documents, "BooksLatency", "platform"))
    # AND the refund's move to NEEDS_ATTENTION and its reason changing are counted by reason
    assert values(documents, "NeedsAttentionByReason", "reason") == [("books_update_failed", 1), ("books_rejected", 1)]
    assert ("NEEDS_ATTENTION", 1) in values(documents, "RefundsByStatus", "status")


def test_every_status_change_is_counted_by_status_and_provider_calls_per_platform(env: World, published: Any) -> None:
    env.provider.add_payment(PAYMENT, eur(10_000))
    env.provider = meter(env.provider, PROVIDER, "stripe")
    refund_id = refunded(env)
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    documents = published()
    statuses = [status for status, _ in values(documents, "RefundsByStatus", "status")]
    assert statuses[-3:] == ["REFUNDED", "INVOICE_UPDATED", "COMPLETED"]
    assert set(statuses) <= set(RefundStatus)
    calls = values(documents, "ProviderCalls", "platform")
    assert calls == [("stripe", 1)] * len(calls) == [("stripe", 1)] * len(env.provider.calls)
    assert values(documents, "ProviderErrors", "platform") == [("stripe", 0)] * len(calls)


def test_every_dimensioned_metric_has_one_dimension_and_a_cloudwatch_unit() -> None:
    units = {"Count", "Milliseconds", "Seconds"}
    assert all(unit in units and dimension for dimension, unit in DIMENSIONED_METRICS.values())
