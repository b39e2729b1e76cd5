"""``python -m dpcourse``: see :mod:`dpcourse.cli`."""

import sys

from dpcourse.cli import main

sys.exit(main())
