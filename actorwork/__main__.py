"""``python -m actorwork`` is the ``actorwork`` command."""

import sys

from actorwork.cli.main import main

sys.exit(main())
