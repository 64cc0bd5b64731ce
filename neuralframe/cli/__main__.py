"""`python -m neuralframe.cli ARGS`: the `neuralframe` command, from a checkout without the entry point."""

import sys

from neuralframe.cli import main

sys.exit(main())
