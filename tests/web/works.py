"""Works safe for a fuzzer to submit: they return at once and touch nothing."""

from __future__ import annotations

import msgspec

from actorwork import work


class Greeting(msgspec.Struct):
    name: str
    times: int = 1


@work(name="web.greet")
def greet(greeting: Greeting) -> str:
    return f"hello {greeting.name}"


@work(name="web.nothing")
def nothing() -> None:
    return None
