"""``python -m model_assigner.bot.cli``: the same command as ``model-assigner``."""

import sys

from model_assigner.bot.cli import main

sys.exit(main())
