"""The Celery baseline: a noop task that counts itself in Redis and notes the last one's time.

celery -A bench.celery_app worker ...   (BENCH_REDIS_URL names the broker)
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DONE_KEY = "bench:done"
FINISHED_KEY = "bench:finished_ms"

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    task_default_queue="bench",
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_redis = redis.Redis.from_url(REDIS_URL)


@app.task(name="noop")
def noop(seq: int, total: int) -> None:
    """Return at once; the last of ``total`` notes the time."""
    if _redis.incr(DONE_KEY) == total:
        _redis.set(FINISHED_KEY, time.time() * 1000)
