"""gunicorn's settings for the Procfile's web process (``--config python:mbcsms.gunicorn_config``).

prometheus-client's multiprocess mode: every worker writes its metrics to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds them up. The variable must be set before a
worker imports prometheus_client, so it is set here, in the arbiter, to a fresh directory when
the deployment leaves it unset; a worker that exits is marked dead (its gauges dropped; its
counters still count).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mbcsms-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

# Access lines made from the fields the format names only (a tenth of gunicorn's own cost).
logger_class = "mbcsms.access_log.AccessLogger"
