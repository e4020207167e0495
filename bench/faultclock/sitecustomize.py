"""A clock jump for one process, without libfaketime (bench/faults.py, tests/test_faults.py).

Put this folder first on PYTHONPATH and set HUB_FAULTS_CLOCK_FILE: from then on
``django.utils.timezone.now()`` in that process returns the real time plus the
number of seconds written in that file (read at most every 0.2 s, so the jump
happens while the process runs). Everything in the hub that asks "what time is
it" for leases, due times, deadlines and django-q2 schedules goes through
``timezone.now()``; monotonic timers (time budgets, django-q2's timeouts) do
not move, as with a real step of the wall clock.
"""

import os
import time
from datetime import timedelta

_path = os.environ.get("HUB_FAULTS_CLOCK_FILE", "")

if _path:
    from django.utils import timezone as _timezone

    _real_now = _timezone.now
    _state = {"checked": 0.0, "offset": 0.0}

    def _offset() -> float:
        moment = time.monotonic()
        if moment - _state["checked"] > 0.2:
            _state["checked"] = moment
            try:
                with open(_path) as handle:
                    _state["offset"] = float(handle.read().strip() or 0)
            except (OSError, ValueError):
                _state["offset"] = 0.0
        return _state["offset"]

    def _shifted_now():
        return _real_now() + timedelta(seconds=_offset())

    _timezone.now = _shifted_now
