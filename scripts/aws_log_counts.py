"""Invocations, records and AWS requests per function and trigger over a
whole run on a deployed stack (the emulator), read off the functions' own
logs like scripts/aws_requests_per_order.py: every invocation logs its
trigger, how many records it was handed, and `aws_requests`, the DynamoDB,
SQS and SSM requests it sent (shared::hosts::lambda::RequestCounter).

Where aws_requests_per_order.py follows one order alone (every batch holds
one event), this reads what a busy run did — after scripts/aws-e2e.sh, the
API suite and the flash sale through the stack — so it shows the batching:
records per invocation for every queue and stream trigger, and, for
analytics, its transactional writes per event and how many batched writes
were refused or planned again. docs/aws.md's cost model takes its figures
from here.

usage: aws_log_counts.py STAGE [SINCE_EPOCH_MS] [OUT.json]
(AWS_ENDPOINT_URL and credentials as for the stack, e.g. the emulator's)
"""

import json
import sys
from collections import Counter, defaultdict

import boto3

FUNCTIONS = ("order-intake", "inventory", "notification", "analytics")
# Lines of the analytics projector (functions/analytics/src/projector.rs).
REFUSED = "batched write refused; one event at a time"
PLANNED_AGAIN = "batched write lost a race; planned again"


def lines(logs, group: str, since: int):
    paginator = logs.get_paginator("filter_log_events")
    for page in paginator.paginate(logGroupName=group, startTime=since):
        for event in page["events"]:
            try:
                yield json.loads(event["message"]).get("fields", {})
            except ValueError:
                continue


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    stage = sys.argv[1]
    since = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    out = sys.argv[3] if len(sys.argv) > 3 else None
    logs = boto3.client("logs")
    report = {}
    for function in FUNCTIONS:
        invocations, records, requests = Counter(), Counter(), defaultdict(Counter)
        sizes = defaultdict(Counter)
        notes = Counter()
        for fields in lines(logs, f"/orderly/{stage}/{function}", since):
            message = fields.get("message")
            if message == "invocation":
                trigger = str(fields.get("trigger"))
                count = int(fields.get("records") or 0)
                invocations[trigger] += 1
                records[trigger] += count
                sizes[trigger][count] += 1
                requests[trigger].update(json.loads(fields.get("aws_requests") or "{}"))
            elif message in (REFUSED, PLANNED_AGAIN):
                notes[message] += 1
        for trigger in sorted(invocations):
            n, r = invocations[trigger], records[trigger]
            row = {
                "invocations": n,
                "records": r,
                "records_per_invocation": round(r / n, 2) if n else None,
                "batch_sizes": dict(sorted(sizes[trigger].items())),
                "requests": dict(sorted(requests[trigger].items())),
                "requests_per_record": {k: round(v / r, 3) for k, v in sorted(requests[trigger].items())} if r else {},
            }
            report[f"{function} {trigger}"] = row
            print(f"{function + ' ' + trigger:<24} invocations {n:>6}  records {r:>6}  "
                  f"per invocation {row['records_per_invocation']}")
            print(f"{'':<24} batch sizes {row['batch_sizes']}")
            print(f"{'':<24} requests per record {row['requests_per_record']}")
        if notes:
            report[f"{function} notes"] = dict(notes)
            print(f"{function:<24} {dict(notes)}")
    if out:
        with open(out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
