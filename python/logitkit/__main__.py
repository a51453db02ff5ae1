"""``python -m logitkit``: the ``logitkit`` command."""

from .cli import main

raise SystemExit(main())
