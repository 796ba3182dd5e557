"""A user's work package: what ``actorwork image build --package`` puts in an image."""

from __future__ import annotations

from actorwork import work


@work(name="shout")
def shout(text: str) -> str:
    return text.upper()
