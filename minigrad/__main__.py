"""`python -m minigrad ...`: the same program as the `minigrad` command."""

from minigrad.cli import main

raise SystemExit(main())
