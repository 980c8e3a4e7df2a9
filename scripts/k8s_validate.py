"""Checks deploy/k8s/ and deploy/argocd/ without a cluster.

- Core resources (StatefulSet, Deployment, Service, ConfigMap, Namespace)
  against Kubernetes' own schemas with kubernetes-validate, strict (an
  unknown field is an error, not a silently dropped typo).
- Custom resources (SpinApp, ScaledObject, TriggerAuthentication, Argo CD
  Application) against their CRDs' published openAPIV3Schema, made strict
  the same way: an object that lists its properties accepts no others
  unless the CRD says it preserves unknown fields. The schemas are not
  committed (they are the projects' files): put them in
  $ORDERLY_CRD_SCHEMAS (default /var/tmp/orderly-tools/crd-schemas) as
  deploy/k8s/schemas/SOURCES.md says; a kind whose schema is not there is
  reported as not checked.
- The kustomization lists every manifest and nothing missing, and no Secret
  is written here (they are referenced by name only).

  python scripts/k8s_validate.py   (in the venv with kubernetes-validate, jsonschema, pyyaml)
"""

import json
import os
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES = "1.33.0"
ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
CRD_SCHEMAS = pathlib.Path(os.environ.get("ORDERLY_CRD_SCHEMAS", "/var/tmp/orderly-tools/crd-schemas"))
CUSTOM = {
    ("core.spinkube.dev/v1alpha1", "SpinApp"): "spinapp_core.spinkube.dev_v1alpha1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject_keda.sh_v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication_keda.sh_v1alpha1.json",
    ("argoproj.io/v1alpha1", "Application"): "application_argoproj.io_v1alpha1.json",
}


def strict(schema):
    """The CRD schema with unknown properties refused where it lists them."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def custom_validator(file):
    path = CRD_SCHEMAS / file
    if not path.exists():
        return None
    schema = strict(json.loads(path.read_text()))
    # metadata is the API server's ObjectMeta, which the CRD leaves open.
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def main():
    errors = []
    validators = {key: custom_validator(file) for key, file in CUSTOM.items()}
    manifests = sorted(p for p in K8S.rglob("*.yaml") if SCHEMAS not in p.parents and p.name != "kustomization.yaml")
    manifests += sorted((ROOT / "deploy" / "argocd").glob("*.yaml"))
    counts = {"core": 0, "custom": 0, "unchecked": 0}
    for path in manifests:
        name = path.relative_to(ROOT)
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            key = (doc.get("apiVersion"), doc.get("kind"))
            where = f"{name}: {key[1]} {doc.get('metadata', {}).get('name')}"
            if key[1] == "Secret":
                errors.append(f"{where}: a Secret is written into git; reference it by name instead")
            elif key in validators and validators[key] is None:
                counts["unchecked"] += 1
            elif key in validators:
                counts["custom"] += 1
                for error in validators[key].iter_errors(doc):
                    path_ = "/".join(str(p) for p in error.absolute_path)
                    errors.append(f"{where}: {path_}: {error.message}")
            else:
                counts["core"] += 1
                try:
                    kubernetes_validate.validate(doc, KUBERNETES, strict=True)
                except kubernetes_validate.ValidationError as error:
                    path_ = "/".join(str(p) for p in error.path)
                    errors.append(f"{where}: {path_}: {error.message}")
                except kubernetes_validate.SchemaNotFoundError as error:
                    errors.append(f"{where}: no schema: {error}")

    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = {K8S / r for r in kustomization.get("resources", [])}
    for resource in sorted(listed):
        if not resource.exists():
            errors.append(f"kustomization.yaml lists {resource.relative_to(K8S)}, which does not exist")
    for path in manifests:
        if K8S in path.parents and path not in listed:
            errors.append(f"{path.relative_to(ROOT)} is not in kustomization.yaml's resources")

    for error in errors:
        print(error, file=sys.stderr)
    missing = sorted(file for file in CUSTOM.values() if not (CRD_SCHEMAS / file).exists())
    if missing:
        print(f"custom resources NOT checked: no CRD schema in {CRD_SCHEMAS} for {', '.join(missing)} "
              "(deploy/k8s/schemas/SOURCES.md says where each comes from)", file=sys.stderr)
    print(f"{counts['core']} core resources (Kubernetes {KUBERNETES}, strict), {counts['custom']} custom resources "
          f"checked against their CRD schemas, {counts['unchecked']} not checked, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
