"""``python -m actorwork`` is the ``actorwork`` command."""

import sys

from actorwork.cli import main

sys.exit(main())
