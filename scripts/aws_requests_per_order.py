"""AWS requests per order on a deployed stack (the emulator), read off the
functions' own logs: every invocation logs `aws_requests`, the DynamoDB, SQS
and SSM requests it sent (shared::hosts::lambda::RequestCounter).

Places one order through the HTTP API (after a warm-up request, so that no
cold start's one-time SSM read is counted), waits until it is confirmed, its
notification written and every queue and outbox empty — watching the tables
and queues directly, not through the functions — then sums the invocations
since the order by function and trigger.

usage: ORDERLY_ADMIN_TOKEN=... ORDERLY_CUSTOMER_TOKEN=... aws_requests_per_order.py BASE_URL STAGE OUT.json
(bearer tokens for the stack's JWT secret: `orderly token --sub admin --admin`,
`orderly token --sub alice`; scripts/aws-bench.sh mints them)
"""

import json
import os
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict

import boto3


def call(method: str, url: str, bearer: str, body=None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {bearer}")
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def until(what: str, check, seconds: float = 60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    base, stage, out = sys.argv[1:4]
    try:
        admin, alice = os.environ["ORDERLY_ADMIN_TOKEN"], os.environ["ORDERLY_CUSTOMER_TOKEN"]
    except KeyError as missing:
        raise SystemExit(f"{missing.args[0]} is not set: {__doc__}")
    sku = "BENCH-" + uuid.uuid4().hex[:8].upper()
    status, _ = call("PUT", f"{base}/api/v1/products/{sku}", admin,
                     {"name": "Bench tea", "price": "2.50", "currency": "EUR", "stock": 100})
    assert status in (200, 201), status
    call("GET", f"{base}/api/v1/orders/{uuid.uuid4()}", alice)  # warm order-intake's HTTP path
    ddb, sqs, logs = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("logs")
    # FIFO queues, but analytics' is standard (template.yaml).
    queues = [sqs.get_queue_url(QueueName=f"orderly-{stage}-{q}")["QueueUrl"]
              for q in ("order-intake.fifo", "inventory.fifo", "notification.fifo", "analytics")]

    def settled():
        for url in queues:
            a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            if int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]):
                return False
        for table in ("orders", "inventory"):
            scan = ddb.scan(TableName=f"orderly-{stage}-{table}", FilterExpression="begins_with(pk, :o)",
                            ExpressionAttributeValues={":o": {"S": "OUTBOX#"}})
            if scan["Count"]:
                return False
        return True

    until("the previous work to settle", settled)
    since = int(time.time() * 1000) - 1
    status, order = call("POST", f"{base}/api/v1/orders", alice, {"items": [{"sku": sku, "quantity": 2}]})
    assert status == 202, status
    order_id = order["id"]

    def confirmed():
        item = ddb.get_item(TableName=f"orderly-{stage}-orders",
                            Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "#"}}, ConsistentRead=True)
        return item.get("Item", {}).get("status", {}).get("S") == "confirmed"

    def notified():
        found = ddb.query(TableName=f"orderly-{stage}-notifications", IndexName="gsi1",
                          KeyConditionExpression="gsi1pk = :o",
                          ExpressionAttributeValues={":o": {"S": f"ORDER#{order_id}"}})
        return found["Count"] > 0

    until("the order to be confirmed", confirmed)
    until("the notification", notified)
    until("every queue and outbox to drain", settled)

    def collect():
        totals, invocations = defaultdict(Counter), Counter()
        for function in ("order-intake", "inventory", "notification", "analytics"):
            paginator = logs.get_paginator("filter_log_events")
            for page in paginator.paginate(logGroupName=f"/orderly/{stage}/{function}", startTime=since):
                for event in page["events"]:
                    try:
                        fields = json.loads(event["message"]).get("fields", {})
                    except ValueError:
                        continue
                    if fields.get("message") == "invocation":
                        key = f"{function} {fields.get('trigger')}"
                        invocations[key] += 1
                        totals[key].update(json.loads(fields.get("aws_requests") or "{}"))
        return totals, invocations

    # Every hop of the saga has logged its invocation.
    hops = {"order-intake Http", "order-intake Stream", "order-intake Sqs", "inventory Sqs",
            "inventory Stream", "notification Sqs", "analytics Sqs"}
    totals, invocations = until("every hop's log line", lambda: (lambda c: c if hops <= set(c[1]) else None)(collect()))
    report = {key: {"invocations": invocations[key], "requests": dict(sorted(counts.items()))}
              for key, counts in sorted(totals.items())}
    for key, row in report.items():
        print(f"{key:<24} invocations {row['invocations']:>2}  {row['requests']}")
    with open(out, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
