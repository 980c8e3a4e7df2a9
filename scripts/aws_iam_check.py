"""Checks, after a run through the deployed stack, that every AWS request a
function logged (`aws_requests` of each invocation, as
scripts/aws_log_counts.py reads them) is an action its role in template.yaml
grants. The emulator does not enforce IAM, so a missing action would only
show on AWS, as AccessDenied. Exits non-zero, naming what is missing.

A `TransactWriteItems` needs the actions of its items (`PutItem`,
`UpdateItem`, `ConditionCheckItem`, `DeleteItem`), which the log does not
name; the adapters' own single-item writes of the same kinds are in the log.
It checks actions, not resources: the log does not say which table a
request went to (docs/aws.md, "IAM model", lists the cross-table ones).

    python scripts/aws_iam_check.py STAGE [template.yaml]
"""

import json
import sys

import boto3
import yaml

ROLES = {
    "order-intake": "OrderIntakeRole",
    "inventory": "InventoryRole",
    "notification": "NotificationRole",
    "analytics": "AnalyticsRole",
}

# The IAM action a logged request needs, where it is not the same name;
# None: named by what it carries (see above).
NEEDS = {
    "DynamoDB.TransactWriteItems": None,
    "SQS.SendMessageBatch": "sqs:SendMessage",
    "SQS.DeleteMessageBatch": "sqs:DeleteMessage",
    "SQS.ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


class TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (`!Ref`, `!GetAtt`, ...) read as plain values."""


def _any_tag(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


TemplateLoader.add_multi_constructor("!", _any_tag)


def granted(template: dict, role: str) -> set[str]:
    actions = set()
    for policy in template["Resources"][role]["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement.get("Effect") == "Allow":
                listed = statement["Action"]
                actions.update([listed] if isinstance(listed, str) else listed)
    return {action.lower() for action in actions}


def needed(request: str) -> str | None:
    if request in NEEDS:
        return NEEDS[request]
    service, operation = request.split(".", 1)
    return f"{service.lower()}:{operation}"


def requested(logs, group: str) -> set[str]:
    names = set()
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group):
        for event in page["events"]:
            try:
                fields = json.loads(event["message"]).get("fields", {})
            except (ValueError, AttributeError):
                continue
            if fields.get("message") == "invocation":
                names.update(json.loads(fields.get("aws_requests") or "{}"))
    return names


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    stage = sys.argv[1]
    with open(sys.argv[2] if len(sys.argv) > 2 else "template.yaml") as file:
        template = yaml.load(file, Loader=TemplateLoader)
    logs = boto3.client("logs")
    missing = {}
    for function, role in ROLES.items():
        allowed = granted(template, role)
        made = requested(logs, f"/orderly/{stage}/{function}")
        lacking = sorted(
            action for action in (needed(r) for r in made) if action is not None and action.lower() not in allowed
        )
        if lacking:
            missing[function] = lacking
        print(f"{function:<13} {len(made)} kinds of request, each granted by {role}" if not lacking else
              f"{function:<13} {role} lacks {lacking}")
    if missing:
        sys.exit(f"actions the functions used that their roles do not grant: {missing}")


if __name__ == "__main__":
    main()
