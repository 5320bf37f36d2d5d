"""The refunds table on moto, built from template.yaml."""

from tests.support.fakes import env, threaded_env  # noqa: F401 - fixtures shared by the domain suites
