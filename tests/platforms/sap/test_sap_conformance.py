"""SAP's books connector against its simulator: the shared books conformance suite."""

from __future__ import annotations

from tests.conformance.books_suite import BooksSuite


class TestSapBooksConformance(BooksSuite):
    pass
