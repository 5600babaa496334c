"""``python -m nnfast``: the command line."""

from .cli import main

raise SystemExit(main())
