"""``python -m kamflow.cli``: the same as the ``kamflow`` command."""

import sys

from kamflow.cli import main

sys.exit(main())
