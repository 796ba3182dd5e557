"""Works safe for a fuzzer to submit: they return at once and touch nothing.

The payload's fields are closed and bounded: an open payload takes any JSON, and an
integer past 64 bits (which MessagePack cannot carry) is then refused with a 422 the
document cannot foretell.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from actorwork import work


class Greeting(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=100)]
    times: Annotated[int, msgspec.Meta(ge=0, le=100)] = 1


@work(name="web.greet")
def greet(greeting: Greeting) -> str:
    return f"hello {greeting.name}"


@work(name="web.nothing")
def nothing() -> None:
    return None
