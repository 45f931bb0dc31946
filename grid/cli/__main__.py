"""``python -m grid.cli``: the ``grid`` command."""

import sys

from grid.cli import main

sys.exit(main())
