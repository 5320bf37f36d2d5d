"""Dynamics 365 Finance's books connector against its simulator: the shared books conformance suite."""

from __future__ import annotations

from tests.conformance.books_suite import BooksSuite


class TestDynamicsFinanceBooksConformance(BooksSuite):
    pass
