"""Print the reliability suite's results file as the Markdown table of RELIABILITY.md.

python tests/reliability/report.py .run/reliability.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str) -> int:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    print("| scenario | mode | events in | scored | dead-lettered | lost | duplicated | notes |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        notes = ", ".join(f"{k}={v}" for k, v in row["notes"].items())
        print(
            f"| {row['scenario']} | {row['mode']} | {row['events_in']} | {row['scored']} "
            f"| {row['dead_lettered']} | {row['lost']} | {row['duplicated']} | {notes} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".run/reliability.jsonl"))
