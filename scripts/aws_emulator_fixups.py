"""After `sam deploy` to ministack: what the emulator does not do by itself.

1. HttpApi routes that SAM puts in the API's OpenAPI body are dropped by the
   emulator, so every path would be a 404. This creates each route of
   template.yaml (the HttpApi events of every function, read from the
   template itself) with a Lambda proxy integration (payload 2.0), exactly as
   API Gateway would from SAM's body.
2. TimeToLiveSpecification is ignored: TTL is enabled on each table.
3. The HttpApi's CorsConfiguration (also in SAM's body) is dropped too: it is
   set on the API, from the template and the stack's CorsOrigins parameter,
   so that the emulator answers preflights as API Gateway would.
4. An event source mapping's `ScalingConfig.MaximumConcurrency` comes out of
   the emulator's CloudFormation as the parameter's string ("10"). Its SQS
   poller compares it with a number for a standard queue (for FIFO it never
   reads it) and fails on every tick, which stalls every SQS mapping. It is
   set again through the Lambda API, as the number it is.

Prints the API id. Runs with the ministack venv's boto3; AWS_ENDPOINT_URL
points it at the emulator.
"""

import sys

import boto3
import yaml


from cfn_yaml import Loader  # scripts/ is on the path: this script is in it


def main(template_path: str, stack: str) -> None:
    template = yaml.load(open(template_path), Loader=Loader)
    cfn = boto3.client("cloudformation")
    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]
    }
    api_id = resources["HttpApi"]
    apigw = boto3.client("apigatewayv2")
    lam = boto3.client("lambda")
    existing = {r["RouteKey"] for r in apigw.get_routes(ApiId=api_id)["Items"]}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        function_arn = lam.get_function(FunctionName=resources[logical_id])["Configuration"]["FunctionArn"]
        integration_id = None
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] != "HttpApi":
                continue
            props = event["Properties"]
            path, method = props["Path"], props["Method"]
            route_key = "$default" if path == "$default" else f"{method.upper()} {path}"
            if route_key in existing:
                continue
            if integration_id is None:
                integration_id = apigw.create_integration(
                    ApiId=api_id,
                    IntegrationType="AWS_PROXY",
                    IntegrationUri=function_arn,
                    PayloadFormatVersion="2.0",
                )["IntegrationId"]
            apigw.create_route(ApiId=api_id, RouteKey=route_key, Target=f"integrations/{integration_id}")
            existing.add(route_key)
    cors = template["Resources"]["HttpApi"]["Properties"].get("CorsConfiguration")
    parameters = {
        p["ParameterKey"]: p.get("ParameterValue", "")
        for p in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Parameters", [])
    }
    origins = [o for o in parameters.get("CorsOrigins", "").split(",") if o]
    if cors and origins:
        # `!If [HasCorsOrigins, {...}, !Ref AWS::NoValue]`: the configuration itself.
        config = dict(cors["If"][1]) if "If" in cors else dict(cors)
        config["AllowOrigins"] = origins
        apigw.update_api(
            ApiId=api_id,
            CorsConfiguration={key: config[key] for key in ("AllowOrigins", "AllowMethods", "AllowHeaders", "ExposeHeaders", "MaxAge")},
        )
    # (boto3 reads the string back as a number, so every limit is set again.)
    for page in lam.get_paginator("list_event_source_mappings").paginate():
        for mapping in page["EventSourceMappings"]:
            limit = mapping.get("ScalingConfig", {}).get("MaximumConcurrency")
            if limit is not None:
                lam.update_event_source_mapping(UUID=mapping["UUID"], ScalingConfig={"MaximumConcurrency": int(limit)})
    ddb = boto3.client("dynamodb")
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            ddb.update_time_to_live(
                TableName=resources[logical_id],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
            )
    # The emulator emits no AWS/* metrics, so alarms never change state on
    # their own: check at least that every one the template declares exists,
    # on the metric it names, notifying the topic.
    declared = {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    alarms = {a["AlarmName"]: a for a in boto3.client("cloudwatch").describe_alarms(MaxRecords=100)["MetricAlarms"]}
    topic = resources["AlarmTopic"]
    for logical_id in declared:
        if logical_id not in resources:  # excluded by a condition
            continue
        name = resources[logical_id]
        if name not in alarms:
            sys.exit(f"alarm {logical_id} ({name}) was not created")
        if topic not in alarms[name].get("AlarmActions", []):
            sys.exit(f"alarm {name} does not notify {topic}")
    print(f"{sum(1 for a in declared if a in resources)} alarms present, each notifying the alarm topic", file=sys.stderr)
    print(api_id)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
