"""``python -m bench.github_standin``: the stand-in as its own process."""

import sys

from bench.github_standin.server import main

sys.exit(main())
