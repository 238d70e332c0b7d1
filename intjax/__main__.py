"""`python -m intjax ...` runs the `intjax` command (for environments where it is not installed as a script)."""

import sys

from intjax.cli import main

sys.exit(main())
