"""``python -m actorwork.testing echo ADDRESS``: an echo peer in another process."""

from __future__ import annotations

import sys

from actorwork.testing.transports import main

if __name__ == "__main__":
    main(sys.argv[1:])
