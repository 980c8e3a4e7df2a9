//! Checks of `template.yaml` that cfn-lint cannot make: what the stack must
//! watch (contract §5, §9; issue 14). Every route of the HTTP API has its
//! own 5xx alarm, every function a memory alarm, every alarm a runbook, the
//! dashboard shows the runner dashboard's figures, and the optional custom
//! domain with mutual TLS leaves the default deploy unchanged.

use std::collections::BTreeSet;

use serde_yaml_ng::{Mapping, Value};

fn template() -> Mapping {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("template.yaml parses")
}

/// A value with CloudFormation's tags (`!Sub`, `!If`, ...) looked through.
fn untagged(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untagged(&tagged.value),
        other => other,
    }
}

fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    untagged(value).as_mapping()?.get(key).map(untagged)
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    get(value, key).and_then(Value::as_str).unwrap_or_default()
}

fn resources(template: &Mapping) -> Vec<(String, Value)> {
    let resources = template.get("Resources").and_then(Value::as_mapping).expect("Resources");
    resources.iter().map(|(name, body)| (name.as_str().unwrap_or_default().to_owned(), body.clone())).collect()
}

fn of_type(template: &Mapping, kind: &str) -> Vec<(String, Value)> {
    resources(template).into_iter().filter(|(_, body)| text(body, "Type") == kind).collect()
}

/// Every `{Name: <name>, Value: <value>}` dimension anywhere under `value`.
fn dimensions(value: &Value, name: &str, found: &mut BTreeSet<String>) {
    match untagged(value) {
        Value::Mapping(mapping) => {
            if mapping.get("Name").and_then(Value::as_str) == Some(name)
                && let Some(dimension) = mapping.get("Value").map(untagged).and_then(Value::as_str)
            {
                found.insert(dimension.to_owned());
            }
            mapping.values().for_each(|v| dimensions(v, name, found));
        }
        Value::Sequence(items) => items.iter().for_each(|v| dimensions(v, name, found)),
        _ => {}
    }
}

/// "METHOD /path" of every HttpApi event of every function (not `$default`).
fn routes(template: &Mapping) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for (_, function) in of_type(template, "AWS::Serverless::Function") {
        let Some(events) = get(&function, "Properties").and_then(|p| get(p, "Events")).and_then(Value::as_mapping)
        else {
            continue;
        };
        for event in events.values() {
            if text(event, "Type") != "HttpApi" {
                continue;
            }
            let properties = get(event, "Properties").cloned().unwrap_or_default();
            let path = text(&properties, "Path");
            if path != "$default" {
                routes.insert(format!("{} {path}", text(&properties, "Method")));
            }
        }
    }
    routes
}

/// The alarms on `metric`, with the `dimension` values they watch and the condition they exist under.
fn alarms_on(template: &Mapping, metric: &str, dimension: &str) -> Vec<(BTreeSet<String>, String)> {
    of_type(template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, alarm)| serde_yaml_ng::to_string(alarm).unwrap().contains(&format!("MetricName: {metric}")))
        .map(|(_, alarm)| {
            let mut found = BTreeSet::new();
            dimensions(&alarm, dimension, &mut found);
            (found, text(&alarm, "Condition").to_owned())
        })
        .collect()
}

#[test]
fn every_route_of_the_http_api_has_its_own_5xx_alarm_with_and_without_metric_math() {
    let template = template();
    let routes = routes(&template);
    assert!(routes.len() >= 10, "the functions' routes: {routes:?}");
    let alarms = alarms_on(&template, "5xx", "Route");
    for route in &routes {
        for condition in ["UsesMetricMath", "NoMetricMath"] {
            assert!(
                alarms.iter().any(|(watched, c)| watched.len() == 1 && watched.contains(route) && c == condition),
                "no {condition} 5xx alarm for {route}"
            );
        }
    }
}

#[test]
fn every_function_has_a_memory_alarm_on_the_metric_the_lambda_host_writes() {
    let template = template();
    let alarms = alarms_on(&template, "orderly_memory_used_percent", "function");
    let watched: BTreeSet<String> = alarms.into_iter().flat_map(|(functions, _)| functions).collect();
    for function in ["order-intake", "inventory", "notification", "analytics"] {
        assert!(watched.contains(function), "no memory alarm for {function}");
    }
}

#[test]
fn every_alarm_says_what_to_do_first() {
    for (name, alarm) in of_type(&template(), "AWS::CloudWatch::Alarm") {
        let properties = get(&alarm, "Properties").cloned().unwrap_or_default();
        let description = text(&properties, "AlarmDescription");
        assert!(description.contains("Runbook: "), "{name} has no runbook line: {description:?}");
    }
}

#[test]
fn the_dashboard_shows_the_runner_dashboards_figures_from_the_stacks_metrics() {
    let template = template();
    let dashboards = of_type(&template, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let body = text(get(&dashboards[0].1, "Properties").unwrap(), "DashboardBody");
    let parsed: serde_json::Value = serde_json::from_str(body).expect("the dashboard body is JSON");
    assert!(parsed["widgets"].as_array().is_some_and(|w| w.len() >= 6));
    for figure in [
        "POST /api/v1/orders",   // orders per second
        "orderly_breaker_state", // the provider's breaker
        "ApproximateNumberOfMessagesVisible",
        "orderly_messages_total",
        "orderly_memory_used_percent",
    ] {
        assert!(body.contains(figure), "the dashboard lacks {figure}");
    }
    for queue in [
        "OrderIntakeQueue",
        "InventoryQueue",
        "NotificationQueue",
        "AnalyticsQueue",
        "OrderIntakeDeadLetterQueue",
        "InventoryDeadLetterQueue",
        "NotificationDeadLetterQueue",
        "AnalyticsDeadLetterQueue",
    ] {
        assert!(body.contains(&format!("${{{queue}.QueueName}}")), "the dashboard lacks {queue}");
    }
}

#[test]
fn the_custom_domain_with_mutual_tls_exists_only_when_its_parameters_are_given() {
    let template = template();
    let domains = of_type(&template, "AWS::ApiGatewayV2::DomainName");
    assert_eq!(domains.len(), 1);
    let (_, domain) = &domains[0];
    assert_eq!(text(domain, "Condition"), "HasApiDomain");
    let mtls = serde_yaml_ng::to_string(get(domain, "Properties").unwrap()).unwrap();
    assert!(mtls.contains("TruststoreUri") && mtls.contains("HasTruststore"), "{mtls}");
    for (name, mapping) in of_type(&template, "AWS::ApiGatewayV2::ApiMapping") {
        assert_eq!(text(&mapping, "Condition"), "HasApiDomain", "{name}");
    }
    let parameters = template.get("Parameters").unwrap();
    for parameter in ["ApiDomainName", "ApiCertificateArn", "MtlsTruststoreUri", "MtlsTruststoreVersion"] {
        assert_eq!(text(get(parameters, parameter).unwrap(), "Default"), "", "{parameter} is optional");
    }
}

/// One settings model: a Spin variable that is a setting defaults to what
/// the model does, so the same shop behaves alike on every host.
#[test]
fn the_spin_manifests_variables_default_to_the_settings_models_defaults() {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spin.toml")).unwrap()).unwrap();
    let variables = manifest["variables"].as_table().expect("a [variables] table");
    let mut compared = 0;
    for (name, declared) in variables {
        let Some(setting) = orderly_core::settings::SETTINGS.iter().find(|s| s.key == name) else { continue };
        let Some(default) = declared.get("default").and_then(toml::Value::as_str) else { continue };
        assert_eq!(
            default, setting.default,
            "spin.toml's {name} defaults to {default:?}, the settings to {:?}",
            setting.default
        );
        compared += 1;
    }
    assert!(compared > 30, "only {compared} variables compared");
}
