"""Reconciliation tests that need the store: the repository on moto (tables from template.yaml)."""

from tests.support.fakes import env  # noqa: F401 - the shared fixture
