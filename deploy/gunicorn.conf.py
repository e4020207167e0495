"""gunicorn settings for Hookhub: ``gunicorn -c deploy/gunicorn.conf.py config.wsgi``.

Metrics (docs/metrics.md, "Several processes"): with PROMETHEUS_MULTIPROC_DIR
set, every worker writes its samples to files in that directory and /metrics
sums them. The directory is emptied by whoever starts the host's processes
(systemd ExecStartPre, the container's entrypoint, `make run`), never here: a
qcluster on the same host shares it and may already be writing. When a worker
exits, its live gauges are dropped (``child_exit``); counters stay, as they must.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
# Django is loaded in each worker after the fork (prometheus_client's files are per process id).
preload_app = False


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
