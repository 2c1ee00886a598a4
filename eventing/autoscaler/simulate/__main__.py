"""``python -m eventing.autoscaler.simulate``: the same as ``eventing simulate``."""

from __future__ import annotations

import sys

from eventing.autoscaler.simulate.cli import main

sys.exit(main())
