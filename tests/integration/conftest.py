"""Integration tests: real services (Redis, a real celery worker process) next to the test database.

The fixtures live in tests/conftest_services.py (see its docstring); importing them here makes them
available to every test in this folder. Without SPENDWATCH_TEST_REDIS_URL (the SQLite pass of
`make test`) the tests that need Redis skip themselves; the PostgreSQL pass runs them.
"""

import pytest

from tests.conftest_services import celery_worker_process, redis_url

__all__ = ["celery_worker_process", "redis_url"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder carries the `integration` marker (select or skip with -m)."""
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.path).startswith(here + "/"):
            item.add_marker(pytest.mark.integration)
