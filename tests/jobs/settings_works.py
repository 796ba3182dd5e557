"""A work that says which ``[chromium]`` settings a work started where it runs would use."""

from __future__ import annotations

from typing import Any

import msgspec

from actorwork import work
from actorwork.chromium.works import current_settings


@work(name="settings.chromium")
def chromium_settings() -> dict[str, Any]:
    return msgspec.to_builtins(current_settings())  # type: ignore[no-any-return]
