"""Checks, after the API tests ran through the deployed stack, that every
function wrote its metrics as CloudWatch Embedded Metric Format documents
(namespace `Orderly`, labels as dimensions) into its log group: the HTTP
functions their request counters and latency, the consumers their message
outcomes. Exits non-zero, saying what is missing.

    python scripts/aws_emf_check.py STAGE
"""

import json
import sys

import boto3

EXPECTED = {
    "order-intake": {"orderly_http_requests_total", "orderly_http_request_duration_seconds", "orderly_messages_total"},
    "inventory": {"orderly_http_requests_total", "orderly_messages_total"},
    # The breaker's state gauge is written when the state changes, which a
    # healthy provider never makes it do.
    "notification": {"orderly_messages_total"},
    "analytics": {"orderly_http_requests_total", "orderly_messages_total"},
}


def emitted(logs, group: str) -> set[str]:
    """The metric names of every EMF document in the log group."""
    names = set()
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group):
        for event in page["events"]:
            try:
                document = json.loads(event["message"])
            except ValueError:
                continue
            aws = document.get("_aws") if isinstance(document, dict) else None
            if not aws:
                continue
            for directive in aws.get("CloudWatchMetrics", []):
                if directive.get("Namespace") == "Orderly":
                    names.update(m["Name"] for m in directive.get("Metrics", []))
    return names


def main() -> None:
    stage = sys.argv[1]
    logs = boto3.client("logs")
    missing = {}
    for function, wanted in EXPECTED.items():
        got = emitted(logs, f"/orderly/{stage}/{function}")
        if not wanted <= got:
            missing[function] = sorted(wanted - got)
        print(f"{function:<13} EMF metrics: {len(got)} names, e.g. {sorted(got)[:4]}")
    if missing:
        sys.exit(f"metrics missing from the EMF logs: {missing}")


if __name__ == "__main__":
    main()
