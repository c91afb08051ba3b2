"""``python -m evozero``: the same as the ``evozero`` command."""
import sys

from evozero.cli import main

sys.exit(main())
