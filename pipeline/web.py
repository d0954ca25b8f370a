"""HTTP on the worker's web server: job status and queue counts.

GET /jobs/{job_id}   the job's latest state (asked of the worker that owns its partition)
GET /queues          counts of lifecycle records by queue, job name and type
"""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from pipeline.application import app
from pipeline.monitoring import queue_counts
from pipeline.topics import job_counts, job_status


@app.page("/jobs/{job_id}/")
class JobView(View):
    """One job's state."""

    @app.table_route(table=job_status, match_info="job_id")
    async def get(self: View, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The state, or 404 when the owning worker's job-status has never seen it."""
        job_id = request.match_info["job_id"]
        state = job_status.get(job_id)
        if state is None:
            return self.json({"error": f"no job {job_id}"}, status=404)
        return self.json(state)


@app.page("/queues/")
class QueuesView(View):
    """Counts by queue, job name and type (the counts this worker holds)."""

    async def get(self, request: Request) -> Response:
        """``{queue: {job name: {type: count}}}``."""
        return self.json(queue_counts(dict(job_counts.items())))
