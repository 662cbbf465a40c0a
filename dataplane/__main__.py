"""`python -m dataplane`: the same as the `dataplane` command."""
import sys

from .cli import main

sys.exit(main())
