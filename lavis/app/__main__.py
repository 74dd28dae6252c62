"""``python -m lavis.app``: see ``lavis.app.cli``."""

import sys

from lavis.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
