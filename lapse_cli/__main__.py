"""`python -m lapse_cli` runs the `lapse` command."""

from lapse_cli.main import main

raise SystemExit(main())
