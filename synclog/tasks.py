"""django-q2 task entry points for logs (thin: they call services)."""

from .services import logs_purge


def purge_old_logs() -> dict:
    return logs_purge()
