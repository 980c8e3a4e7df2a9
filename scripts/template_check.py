"""What template.yaml must keep true at the edge (contract §8, issue 14), beyond
what cfn-lint and `sam validate --lint` know:

- the CloudFront distribution caches `/api/v1/products*` with a cache policy
  keyed on Accept, normalized by a viewer-request function, honouring the
  origin's max-age; everything else goes through CachingDisabled with every
  viewer header (AllViewerExceptHostHeader);
- the normalizing function agrees with the API's own negotiation (run with
  node on the cases of shared/core/src/http/versioning.rs);
- the optional WAF web ACL (scope CLOUDFRONT, a rate-based rule, the AWS
  managed common rule set) is attached to the distribution;
- the distribution's domain is an output; the HTTP API's CORS configuration
  and the functions' ORDERLY_CORS_ORIGINS / ORDERLY_CATALOG_MAX_AGE come from
  the same parameters.

Usage: python scripts/template_check.py template.yaml   (exit 1 on a failure)
"""

import json
import shutil
import subprocess
import sys

import yaml

CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


from cfn_yaml import Loader  # scripts/ is on the path: this script is in it

FAILURES = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        FAILURES.append(what)


def refs(value):
    """Every logical id a value refers to (Ref, GetAtt, Sub's ${...})."""
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found |= {token.split("}")[0].split(".")[0] for token in text.split("${")[1:]}
            elif key == "GetAtt":
                found.add(inner.split(".")[0] if isinstance(inner, str) else inner[0])
            found |= refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= refs(inner)
    return found


# (Accept header, what the API negotiates: v1, v2 or 406)
NEGOTIATION_CASES = [
    ("", "application/json"),
    ("application/json", "application/json"),
    ("*/*", "application/json"),
    ("application/vnd.orderly.v2+json", "application/vnd.orderly.v2+json"),
    ("application/json, application/vnd.orderly.v2+json;q=0.9", "application/vnd.orderly.v2+json"),
    ("application/vnd.orderly.v1+json", "application/json"),
    ("application/vnd.orderly.v2+json;q=0", "application/json"),
    ("application/vnd.orderly.v3+json", "application/vnd.orderly.unknown+json"),
    ("application/vnd.orderly.v9+json, application/json", "application/json"),
    ("APPLICATION/VND.ORDERLY.V2+JSON", "application/vnd.orderly.v2+json"),
]


def check_function(code):
    node = shutil.which("node")
    if node is None:
        check(False, "node is installed to run the CloudFront function")
        return
    harness = code + "\nvar cases = " + json.dumps(NEGOTIATION_CASES) + """;
var out = cases.map(function (c) {
  var headers = c[0] === '' ? {} : {accept: {value: c[0]}};
  return handler({request: {headers: headers}}).headers.accept.value;
});
console.log(JSON.stringify(out));
"""
    result = subprocess.run([node, "-e", harness], capture_output=True, text=True, timeout=30)
    check(result.returncode == 0, f"the CloudFront function runs ({result.stderr.strip()[:200]})")
    if result.returncode != 0:
        return
    got = json.loads(result.stdout)
    for (accept, want), value in zip(NEGOTIATION_CASES, got):
        check(value == want, f"Accept {accept!r} normalizes to {want} (got {value})")


def main(path):
    template = yaml.load(open(path), Loader=Loader)
    resources = template["Resources"]

    cdn = resources.get("Cdn", {})
    check(cdn.get("Type") == "AWS::CloudFront::Distribution", "a CloudFront distribution")
    config = cdn.get("Properties", {}).get("DistributionConfig", {})
    origin = config.get("Origins", [{}])[0]
    check("HttpApi" in refs(origin.get("DomainName")), "its origin is the HTTP API")

    default = config.get("DefaultCacheBehavior", {})
    check(default.get("CachePolicyId") == CACHING_DISABLED, "everything else is not cached (CachingDisabled)")
    check(
        default.get("OriginRequestPolicyId") == ALL_VIEWER_EXCEPT_HOST,
        "everything else gets every viewer header (AllViewerExceptHostHeader)",
    )

    catalog = [b for b in config.get("CacheBehaviors", []) if b.get("PathPattern") == "/api/v1/products*"]
    check(len(catalog) == 1, "a cache behavior for /api/v1/products*")
    behavior = catalog[0] if catalog else {}
    check(set(behavior.get("CachedMethods", [])) == {"GET", "HEAD"}, "only GET and HEAD are cached")
    check("PUT" in behavior.get("AllowedMethods", []), "admin writes under /api/v1/products still pass")
    policy_ids = refs(behavior.get("CachePolicyId"))
    policy = resources.get(next(iter(policy_ids), ""), {})
    check(policy.get("Type") == "AWS::CloudFront::CachePolicy", "the catalog behavior has its own cache policy")
    policy_config = policy.get("Properties", {}).get("CachePolicyConfig", {})
    key = policy_config.get("ParametersInCacheKeyAndForwardedToOrigin", {})
    headers = [h.lower() for h in key.get("HeadersConfig", {}).get("Headers", [])]
    check("accept" in headers, "the cache policy keys on Accept")
    check(key.get("EnableAcceptEncodingGzip") and key.get("EnableAcceptEncodingBrotli"), "and on the encoding")
    check(
        policy_config.get("DefaultTTL") == 0 and policy_config.get("MinTTL") == 0 and policy_config.get("MaxTTL", 0) > 0,
        "the origin's max-age decides (MinTTL 0, DefaultTTL 0, MaxTTL > 0)",
    )
    functions = behavior.get("FunctionAssociations", [])
    check(
        any(f.get("EventType") == "viewer-request" for f in functions),
        "a viewer-request function normalizes Accept before the cache key is computed",
    )
    function_ids = set().union(*(refs(f.get("FunctionARN")) for f in functions)) if functions else set()
    function = resources.get(next(iter(function_ids), ""), {})
    check(function.get("Type") == "AWS::CloudFront::Function", "the normalizer is a CloudFront function")
    check_function(function.get("Properties", {}).get("FunctionCode", ""))

    waf_ids = refs(config.get("WebACLId"))
    check("WebAcl" in waf_ids, "the WAF web ACL is attached to the distribution")
    waf = resources.get("WebAcl", {}).get("Properties", {})
    check(waf.get("Scope") == "CLOUDFRONT", "the web ACL's scope is CLOUDFRONT")
    statements = [rule.get("Statement", {}) for rule in waf.get("Rules", [])]
    check(any("RateBasedStatement" in s for s in statements), "the web ACL has a rate-based rule")
    check(
        any(s.get("ManagedRuleGroupStatement", {}).get("Name") == "AWSManagedRulesCommonRuleSet" for s in statements),
        "the web ACL has the AWS managed common rule set",
    )

    outputs = template.get("Outputs", {})
    check(any("Cdn" in refs(o.get("Value")) for o in outputs.values()), "the distribution's domain is an output")

    cors = resources["HttpApi"]["Properties"].get("CorsConfiguration")
    check("CorsOrigins" in refs(cors), "the HTTP API's CORS configuration comes from CorsOrigins")
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    check(refs(env.get("ORDERLY_CORS_ORIGINS")) == {"CorsOrigins"}, "the functions' ORDERLY_CORS_ORIGINS too")
    check(refs(env.get("ORDERLY_CATALOG_MAX_AGE")) == {"CatalogMaxAge"}, "ORDERLY_CATALOG_MAX_AGE is a parameter")

    if FAILURES:
        print(f"{len(FAILURES)} template check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
