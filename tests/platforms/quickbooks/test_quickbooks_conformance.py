"""QuickBooks Online's books connector against its simulator: the shared books conformance suite."""

from __future__ import annotations

import pytest

from tests.conformance.books_suite import BooksHarness, BooksSuite
from tests.platforms.quickbooks.conftest import Wired


@pytest.fixture
def harness(wired: Wired) -> BooksHarness:
    return BooksHarness(name="quickbooks", connector=wired.books, sandbox=wired.simulator)


class TestQuickBooksBooksConformance(BooksSuite):
    pass
