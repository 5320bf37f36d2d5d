"""Domain tests: the repository on moto (tables from template.yaml), fakes for every other port."""

from tests.support.domain import paid  # noqa: F401 - shared fixture
from tests.support.fakes import env, threaded_env  # noqa: F401 - fixtures shared by the domain suites
