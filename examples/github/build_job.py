"""The build job of the git-push walkthrough: one process per push (a job workload).

eventing runs it with the push event as a file (``K_EVENT_FILE``, structured JSON) and
``K_EVENT_ID`` / ``K_EVENT_SOURCE`` / ``K_EVENT_TYPE`` set. It prints what it builds
and, when ``BUILD_COMMAND`` is set (an argv as JSON, e.g. ``["make", "test"]``), runs
it with ``GIT_REPOSITORY``, ``GIT_REF`` and ``GIT_SHA``; its exit code is the job's,
so a failed build is retried by the trigger's delivery spec and then dead-lettered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    with open(os.environ["K_EVENT_FILE"], encoding="utf-8") as f:
        event = json.load(f)
    push = event.get("data") or {}
    repo = f"{event.get('owner', '?')}/{event.get('repository', '?')}"
    ref, sha = event.get("ref", "?"), push.get("after", "?")
    print(f"build {repo} {ref} at {sha} (event {os.environ.get('K_EVENT_ID')})", flush=True)
    command = json.loads(os.environ.get("BUILD_COMMAND", "[]"))
    if not command:
        return 0
    env = {**os.environ, "GIT_REPOSITORY": repo, "GIT_REF": ref, "GIT_SHA": sha}
    return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
