"""``python -m daemon`` is the ``enhancerd`` console script."""

import sys

from daemon.cli import main

sys.exit(main())
