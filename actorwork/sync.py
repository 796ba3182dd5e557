"""A client for synchronous code: a Flask or Django view, a script, a thread pool.

:class:`SyncClient` runs a :class:`~actorwork.topology.JobSystem` on an event loop of
its own, in a background thread, and turns each call into a blocking one. One client
is safe to share between threads (the calls travel to its loop, which serialises
them), so a web application makes one at start-up and uses it from every request::

    jobs = actorwork.SyncClient(actorwork.load_config("actorwork.toml"))
    handle = jobs.submit(render, Page(url="https://example.org"))
    pdf = handle.result(timeout=60)          # blocks this thread only
    jobs.close()                             # or `with actorwork.SyncClient(...) as jobs:`

With the distributed topology it is only a client of the Scheduler named in the
config; with inline and local it runs that whole topology in its thread (set
``pools=False`` to run only the Scheduler). Errors are those of :class:`Client`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar

from actorwork.client import Client, JobHandle
from actorwork.config import Config, load_config
from actorwork.errors import ActorworkError
from actorwork.messages import JobView, LogLine
from actorwork.topology import JobSystem
from actorwork.workflow import Workflow, WorkflowView

__all__ = ["SyncClient", "SyncJobHandle"]

T = TypeVar("T")


class SyncClient:
    """Blocking calls to a job system run in a background thread; see the module doc.

    ``start_timeout`` bounds how long the constructor waits for the job system to
    start (a Scheduler that is not listening yet is retried by the client itself).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        pools: bool = True,
        start_timeout: float = 60.0,
    ) -> None:
        self.config = config if config is not None else load_config()
        self._pools = pools
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._client: Client | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(),), name="actorwork-sync-client", daemon=True
        )
        self._thread.start()
        if not self._started.wait(start_timeout):
            raise ActorworkError(
                f"the job system did not start within start_timeout={start_timeout!r} s"
            )
        self._raise_failure()

    def _raise_failure(self) -> None:
        """Raise why the job system did not start, in the thread that made the client."""
        if self._failure is not None:
            self._thread.join()
            raise self._failure

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with JobSystem(self.config, pools=self._pools) as jobs:
                assert jobs.client is not None
                self._client = jobs.client
                self._started.set()
                await self._stop.wait()
        except BaseException as exc:
            if self._started.is_set():
                raise
            self._failure = exc
        finally:
            self._started.set()

    def _run(self, make: Callable[[Client], Coroutine[Any, Any, T]], timeout: float | None) -> T:
        if self._closed or self._loop is None or self._client is None:
            raise ActorworkError("this SyncClient is closed")
        client = self._client
        future: Future[T] = asyncio.run_coroutine_threadsafe(make(client), self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    # --- the client's calls, blocking ------------------------------------------------

    def submit(self, work: Any, payload: Any = None, **options: Any) -> SyncJobHandle:
        """Submit a job (see :meth:`Client.submit`) and return its handle."""
        handle = self._run(lambda c: c.submit(work, payload, **options), None)
        return SyncJobHandle(self, handle)

    def submit_many(
        self, work: Any, payloads: Iterable[Any], **options: Any
    ) -> list[SyncJobHandle]:
        """Submit one job per payload in a few messages (see :meth:`Client.submit_many`);
        their handles in order. A refused payload is named by its index."""
        payloads = list(payloads)  # read in this thread, not on the client's loop
        handles = self._run(lambda c: c.submit_many(work, payloads, **options), None)
        return [SyncJobHandle(self, h) for h in handles]

    def ping(self, *, timeout: float | None = None) -> float:
        """Block until the Scheduler answers (see :meth:`Client.ping`); the seconds it took."""
        return self._run(lambda c: c.ping(timeout=timeout), None)

    def get(self, job_id: str) -> JobView:
        return self._run(lambda c: c.get(job_id), None)

    def status(self, job_id: str) -> str:
        return self.get(job_id).status

    def wait(self, job_id: str, *, timeout: float | None = None) -> JobView:
        """Block until the job is terminal; its view. AskTimeout past ``timeout``."""
        return self._run(lambda c: c.wait(job_id, timeout=timeout), None)

    def result(self, job_id: str, *, timeout: float | None = None) -> Any:
        """Block until the job is terminal; its value, or JobFailed."""
        return self._run(lambda c: c.result(job_id, timeout=timeout), None)

    def cancel(self, job_id: str, reason: str = "cancelled by request") -> JobView:
        return self._run(lambda c: c.cancel(job_id, reason), None)

    def retry(self, job_id: str) -> JobView:
        return self._run(lambda c: c.retry(job_id), None)

    def delete(self, job_id: str) -> JobView:
        return self._run(lambda c: c.delete(job_id), None)

    def submit_workflow(self, flow: Workflow, payload: Any = None, **options: Any) -> str:
        """Submit a workflow (see :meth:`Client.submit_workflow`); its id."""
        return self._run(lambda c: c.submit_workflow(flow, payload, **options), None)

    def workflow(self, workflow_id: str) -> WorkflowView:
        """A workflow's tree (see :meth:`Client.workflow`)."""
        return self._run(lambda c: c.workflow(workflow_id), None)

    def list(
        self, *, status: str | None = None, queue: str | None = None, limit: int = 100
    ) -> list[JobView]:
        return self._run(lambda c: c.list(status=status, queue=queue, limit=limit), None)

    # --- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Stop the job system and its thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.config.jobs.topology
        return f"<SyncClient {state}>"


class SyncJobHandle:
    """One submitted job, followed with blocking calls; ``id`` is its job id."""

    def __init__(self, client: SyncClient, handle: JobHandle) -> None:
        self.client = client
        self.id = handle.id
        #: False when a unique key matched an existing job.
        self.created = handle.created

    def status(self) -> str:
        return self.client.status(self.id)

    def view(self) -> JobView:
        return self.client.get(self.id)

    def wait(self, *, timeout: float | None = None) -> JobView:
        return self.client.wait(self.id, timeout=timeout)

    def result(self, *, timeout: float | None = None) -> Any:
        return self.client.result(self.id, timeout=timeout)

    def cancel(self, reason: str = "cancelled by request") -> JobView:
        return self.client.cancel(self.id, reason)

    def logs(self) -> list[LogLine]:
        result = self.view().result
        return [] if result is None else list(result.logs)

    def __repr__(self) -> str:
        return f"<SyncJobHandle {self.id}>"
