"""What ``actorwork demo`` and ``actorwork greet`` run.

``demo`` puts real work in the background on the embedded defaults (an inline job
system: the Scheduler, a Pool and its workers in this process, the store and the
outbox under ``./.actorwork``) and shows the results, logs and artifacts: an invoice
that logs, prints, reports progress and writes a file; a flaky call that succeeds on
its third attempt; a division by zero that ends dead with its traceback.

``greet`` is the actor demo: the same code asks the same actor, and only the
configured address decides whether that actor lives in this process
(``inproc://``), in another process on this host (``unix://``) or behind TCP.
"""

from __future__ import annotations

import os
from typing import assert_never

import anyio
import msgspec

from actorwork.messages import Message
from actorwork.runtime.actor import Actor
from actorwork.work import WorkContext, work

__all__ = [
    "DEFAULT_CONFIG",
    "DEMO_JOBS_CONFIG",
    "Greet",
    "Greeter",
    "Greeting",
    "Invoice",
    "divide",
    "flaky",
    "invoice",
]

DEMO_JOBS_CONFIG = """
[jobs]
topology = "inline"
modules = ["actorwork.cli.demo"]

[scheduler]
store = ".actorwork/demo/jobs.db"
lease = 10.0
retry_base = 0.2

[pools.demo]
kind = "local"
size = 2
outbox = ".actorwork/demo/outbox"
"""


class Invoice(msgspec.Struct):
    customer: str
    items: list[float]


@work(name="demo.invoice", retries=2, timeout=30)
async def invoice(ctx: WorkContext, order: Invoice) -> float:
    """Total an order, step by step, and attach the invoice as a text file."""
    ctx.log.info("invoice_started", customer=order.customer, items=len(order.items))
    lines = []
    for index, amount in enumerate(order.items, start=1):
        await anyio.sleep(0.05)  # stands for a slow lookup
        lines.append(f"item {index}: {amount:10.2f}")
        ctx.progress(index / len(order.items), f"item {index} of {len(order.items)}")
    total = round(sum(order.items), 2)
    print(f"invoice for {order.customer}: {total:.2f}")
    text = "\n".join([f"Invoice for {order.customer}", *lines, f"total:  {total:10.2f}", ""])
    ctx.add_artifact("invoice.txt", text.encode(), media_type="text/plain")
    return total


@work(name="demo.flaky", retries=3)
def flaky(ctx: WorkContext, failures: int) -> str:
    """Fail the first ``failures`` attempts (a flaky remote service), then succeed."""
    if ctx.attempt <= failures:
        ctx.log.warning("service_unavailable", attempt=ctx.attempt)
        raise ConnectionError(f"service unavailable (attempt {ctx.attempt})")
    return f"ok on attempt {ctx.attempt}"


@work(name="demo.divide", retries=1)
def divide(a: float, b: float) -> float:
    """Divide; with ``b = 0`` every attempt raises, and the job ends dead."""
    return a / b


DEFAULT_CONFIG = """
[system]
name = "demo"

[actors.greeter]
factory = "actorwork.cli.demo:Greeter"
address = "inproc://demo-greeter"
"""


class Greet(Message, tag="demo.greet"):
    name: str


class Greeting(Message, tag="demo.greeting"):
    text: str
    pid: int
    system: str
    count: int


class Greeter(Actor):
    """Greets by name and counts how many it has greeted."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Greet) -> Greeting:
        match message:
            case Greet(name=name):
                if not name.strip():
                    raise ValueError(f"cannot greet an empty name {name!r}")
                self.count += 1
                self.log.info("greeted", name=name, count=self.count)
                return Greeting(f"hello, {name}", os.getpid(), self.system.name, self.count)
            case _:
                assert_never(message)
