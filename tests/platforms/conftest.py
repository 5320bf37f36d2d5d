"""Fixtures shared by the platform suites: the domain's world (the repository on moto, fakes for the other ports)
for the conformance checks that run a platform's news through the domain."""

from tests.support.fakes import env  # noqa: F401 - shared fixture
