"""What an operator changes over HTTP, on any worker that runs the monitor: redriving and
discarding dead letters, pausing and resuming queues. Each goes through Kafka (the dead-letter
topic, job-events, queue-control), as the command line does without a worker.

POST /dlq/{queue}/{job_id}/redrive   send one dead letter back to its queue
POST /dlq/{queue}/redrive            all of them (``?job_name=`` only that job's)
POST /dlq/{queue}/{job_id}/discard   drop one for good (its job ends ``skipped``)
POST /dlq/{queue}/discard            all of them (``?job_name=`` only that job's)
POST /queues/{queue}/pause           every worker stops taking the queue's new jobs
POST /queues/{queue}/resume          and takes them again
GET  /paused                         the queues paused by an operator
"""

from __future__ import annotations

from faust.web import Request, Response

from pipeline.agents.control import pauses
from pipeline.agents.runtime import FaustPublisher
from pipeline.application import app, settings
from pipeline.catalog import QUEUES
from pipeline.deadletters import discard, redrive, redrive_all
from pipeline.pauses import set_paused
from pipeline.web_auth import GuardedView


def _no_queue(view: GuardedView, queue: str) -> Response:
    return view.json({"error": f"no queue {queue} (known: {', '.join(QUEUES)})"}, status=404)


@app.page("/dlq/{queue}/{job_id}/redrive/")
class RedriveView(GuardedView):
    """Send one dead letter back to its queue."""

    async def post(self, request: Request, queue: str, job_id: str) -> Response:
        """202 with the redrive count, or 404 when the job is not dead-lettered."""
        if queue not in QUEUES:
            return _no_queue(self, queue)
        sent = await redrive(settings, QUEUES[queue], job_id, FaustPublisher())
        if sent is None:
            return self.json({"error": f"job {job_id} is not dead-lettered"}, status=404)
        return self.json(sent, status=202)


@app.page("/dlq/{queue}/redrive/")
class RedriveAllView(GuardedView):
    """Send every dead letter of a queue back to it."""

    async def post(self, request: Request, queue: str) -> Response:
        """202 with ``{"redriven": [{job_id, redrive}]}``."""
        if queue not in QUEUES:
            return _no_queue(self, queue)
        job_name = request.query.get("job_name") or None
        sent = await redrive_all(settings, QUEUES[queue], FaustPublisher(), job_name=job_name)
        return self.json({"redriven": sent}, status=202)


@app.page("/dlq/{queue}/{job_id}/discard/")
class DiscardView(GuardedView):
    """Drop one dead letter for good."""

    async def post(self, request: Request, queue: str, job_id: str) -> Response:
        """202 with ``{"discarded": [job_id]}``, or 404 when the job is not dead-lettered."""
        if queue not in QUEUES:
            return _no_queue(self, queue)
        gone = await discard(settings, QUEUES[queue], FaustPublisher(), job_ids=[job_id])
        if not gone:
            return self.json({"error": f"job {job_id} is not dead-lettered"}, status=404)
        return self.json({"discarded": gone}, status=202)


@app.page("/dlq/{queue}/discard/")
class DiscardAllView(GuardedView):
    """Drop every dead letter of a queue for good."""

    async def post(self, request: Request, queue: str) -> Response:
        """202 with ``{"discarded": [job_id]}``."""
        if queue not in QUEUES:
            return _no_queue(self, queue)
        job_name = request.query.get("job_name") or None
        gone = await discard(settings, QUEUES[queue], FaustPublisher(), job_name=job_name)
        return self.json({"discarded": gone}, status=202)


@app.page("/queues/{queue}/{action}/")
class PauseView(GuardedView):
    """Pause or resume a queue on every worker."""

    async def post(self, request: Request, queue: str, action: str) -> Response:
        """202 with ``{"queue", "paused"}``; ``action`` is ``pause`` or ``resume``."""
        if queue not in QUEUES:
            return _no_queue(self, queue)
        if action not in ("pause", "resume"):
            return self.json({"error": f"no action {action} (pause, resume)"}, status=404)
        paused = action == "pause"
        by = f"http:{settings.worker_id}"
        await set_paused(settings, QUEUES[queue], FaustPublisher(), paused=paused, by=by)
        return self.json({"queue": queue, "paused": paused}, status=202)


@app.page("/paused/")
class PausedView(GuardedView):
    """The queues an operator paused, as this worker has read them."""

    async def get(self, request: Request) -> Response:
        """``{queue: {"at_ms", "by"}}``."""
        return self.json(pauses.paused())
