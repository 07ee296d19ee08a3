"""``python -m enet.cli_entry enet-train ...``: run any console script by name (for tests and CI)."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python -m enet.cli_entry SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    name, argv = sys.argv[1], sys.argv[2:]
    found = entry_points()  # entry_points(group=...) is Python 3.10+; 3.8/3.9 give a dict of groups
    scripts = found.select(group="console_scripts") if hasattr(found, "select") else found.get("console_scripts", ())
    eps = {ep.name: ep for ep in scripts if ep.name.startswith("enet-")}
    if name not in eps:
        print(f"unknown script {name}; known: {', '.join(sorted(eps))}", file=sys.stderr)
        return 2
    return eps[name].load()(argv)


if __name__ == "__main__":
    sys.exit(main())
