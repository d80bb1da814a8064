"""``python -m videodd.cli``: the ``videodd`` command."""

import sys

from videodd.cli import main

sys.exit(main())
