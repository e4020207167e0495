"""The engine's clock. Every engine module reads it as ``clock.now()`` so a test
can move time (tests/conftest.py ``clock`` fixture) instead of waiting."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
