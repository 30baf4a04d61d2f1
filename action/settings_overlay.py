"""Write a settings file whose ``configs`` globs are the action's ``configs`` input, keeping every
other key of the settings file given (or of ``.mcx-review.yaml`` in the working directory).

Usage: ``python settings_overlay.py OUT.yaml "GLOBS" [SETTINGS.yaml]``; globs are newline or
space separated. Stdlib + PyYAML only (the light core).
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml


def main(argv: list) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    out, globs = Path(argv[0]), argv[1].split()
    source = Path(argv[2]) if len(argv) == 3 and argv[2] else Path(".mcx-review.yaml")
    data = {}
    if source.is_file():
        try:
            data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            print(f"mcx-review: {source}: invalid YAML: {exc}", file=sys.stderr)
            return 2
        if not isinstance(data, dict):
            print(f"mcx-review: {source}: expected a mapping at the top", file=sys.stderr)
            return 2
    elif len(argv) == 3 and argv[2]:
        print(f"mcx-review: {source}: settings file not found", file=sys.stderr)
        return 2
    data["configs"] = globs
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
