"""`python -m twinstar`: see `twinstar.cli`."""

from __future__ import annotations

from twinstar.cli import main

raise SystemExit(main())
