"""``python -m videodd`` (and ``torchrun --nproc_per_node=N -m videodd ...``): the ``videodd`` command."""

import sys

from videodd.cli import main

sys.exit(main())
