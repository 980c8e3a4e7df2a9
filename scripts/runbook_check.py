"""Every alarm in template.yaml has its runbook line in docs/operations.md.

An alarm is named `orderly-${Stage}-<name>` (its AlarmName); the runbook
keys its line by `<name>` in backquotes at the start of a table row.
"""

import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
alarms = re.findall(r"AlarmName:\s*!Sub\s+orderly-\$\{Stage\}-([A-Za-z0-9-]+)", (root / "template.yaml").read_text())
runbook = set(re.findall(r"^\|\s*`([A-Za-z0-9-]+)`\s*\|", (root / "docs" / "operations.md").read_text(), re.M))
missing = [alarm for alarm in alarms if alarm not in runbook]
stale = sorted(runbook - set(alarms))
for alarm in missing:
    print(f"alarm {alarm} (template.yaml) has no runbook line in docs/operations.md", file=sys.stderr)
for alarm in stale:
    print(f"docs/operations.md has a runbook line for {alarm}, which template.yaml no longer defines", file=sys.stderr)
print(f"{len(alarms)} alarms, {len(alarms) - len(missing)} with a runbook line")
sys.exit(1 if missing or stale else 0)
