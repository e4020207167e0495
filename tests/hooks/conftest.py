import pytest

from hooks.inbound.lookup_cache import lookup_cache


@pytest.fixture
def fresh_lookup_cache():
    """The in-process lookup answer cache empty before and after the test."""
    lookup_cache.clear()
    yield
    lookup_cache.clear()
