"""``python -m server``: the ``matinee`` command."""

import sys

from server.cli.main import main

sys.exit(main())
