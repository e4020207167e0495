from datetime import timedelta

import pytest
from django.utils import timezone

from hub import events

from .factories import BrandFactory

pytest_plugins = ["tests.browser_support", "tests.production_shape"]


@pytest.fixture(autouse=True)
def _fresh_generation_board():
    """Every test starts with an empty generation board (hub.generations): the board only
    grows, and SQLite gives a rolled-back test's brand id to the next test's brand."""
    from hub import generations

    generations.board().reset()


@pytest.fixture
def brand(db):
    return BrandFactory(slug="acme", name="Acme")


@pytest.fixture
def other_brand(db):
    return BrandFactory(slug="globex", name="Globex", default_region="SE", time_zone="Europe/Stockholm")


@pytest.fixture
def captured_events(monkeypatch):
    """Events emitted during the test, with whether a transaction was open."""
    from django.db import connection

    seen = []

    def capture(event):
        seen.append((event, connection.in_atomic_block))

    monkeypatch.setitem(events._subscribers, "*", [*events._subscribers["*"], capture])
    return seen


class Clock:
    """The outbound engine's clock, moved by hand: retries are tested by moving time, never by waiting."""

    def __init__(self):
        self.current = timezone.now()

    def __call__(self):
        return self.current

    def advance(self, **kwargs):
        self.current += timedelta(**kwargs)


@pytest.fixture
def clock(monkeypatch):
    from hooks.outbound.engine import clock as engine_clock

    clock = Clock()
    monkeypatch.setattr(engine_clock, "now", clock)
    return clock
