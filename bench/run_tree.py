"""Run a bench script against another source tree of eventing (a before/after
comparison in one session): ``python bench/run_tree.py TREE SCRIPT [ARGS...]``, or a
module: ``python bench/run_tree.py TREE -m MODULE [ARGS...]``.

The virtualenv's editable install would always import this checkout; this drops its
finder and puts TREE first on the path. Make TREE with, for example,
``mkdir /tmp/before && git archive main | tar -x -C /tmp/before``.

Give SCRIPT as TREE's copy (``TREE/bench/X.py``): its directory goes first on the
path, so the helpers it imports are TREE's too. The processes ``bench_pipeline``
starts (every ``eventing run``) run in TREE (``EVENTING_BENCH_TREE``) either way;
benches that start processes in their own ``ROOT`` (bench_sources, bench_shutdown,
bench_ingress_worker) need TREE's copy of the script.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    tree, script, *args = sys.argv[1:]
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, tree)
    # bench_pipeline starts every ``eventing run`` (and subscriber) in this directory,
    # so they import TREE's code even when SCRIPT is this checkout's copy.
    os.environ["EVENTING_BENCH_TREE"] = str(Path(tree).resolve())
    if script == "-m":
        module, *args = args
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        # The script's own directory first, as ``python SCRIPT`` would have it: its
        # helper imports (bench_pipeline, whose ROOT is the cwd every ``eventing run``
        # it starts gets) must come from TREE too, not from this checkout's bench/.
        sys.path.insert(0, str(Path(script).resolve().parent))
        sys.argv = [script, *args]
        runpy.run_path(script, run_name="__main__")
