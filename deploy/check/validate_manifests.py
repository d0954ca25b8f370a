"""Validate rendered Kubernetes manifests offline: built-in kinds against Kubernetes' own
schemas (the kubernetes-validate package ships them, strict: unknown fields are errors), custom
resources against the openAPIV3Schema of their CustomResourceDefinition (given with --crd).

    python deploy/check/validate_manifests.py --kubernetes-version 1.31 [--crd CRD.yaml] FILE...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml


def crd_schemas(paths: list[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """The schema of each served version of each CRD, by (apiVersion, kind)."""
    schemas = {}
    for path in paths:
        for crd in yaml.safe_load_all(path.read_text()):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def problems(
    document: dict[str, Any], version: str, crds: dict[tuple[str, str], dict[str, Any]]
) -> list[str]:
    """What is wrong with one manifest; empty when it is valid."""
    name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
    custom = crds.get((document.get("apiVersion", ""), document.get("kind", "")))
    if custom is not None:
        validator = jsonschema.Draft7Validator(custom)
        return [
            f"{name}: {error.json_path}: {error.message}"
            for error in validator.iter_errors(document)
        ]
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {'.'.join(map(str, error.path))}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{name}: no schema for it ({error}); give its CRD with --crd"]
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", required=True)
    parser.add_argument("--crd", type=Path, action="append", default=[])
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    crds = crd_schemas(args.crd)
    found, checked = [], 0
    for path in args.files:
        for document in yaml.safe_load_all(path.read_text()):
            if not document:
                continue
            checked += 1
            found += [
                f"{path.name}: {problem}"
                for problem in problems(document, args.kubernetes_version, crds)
            ]
    for problem in found:
        print(f"validate_manifests: {problem}", file=sys.stderr)
    if checked == 0:
        print("validate_manifests: no manifests to check", file=sys.stderr)
        return 1
    if not found:
        version = args.kubernetes_version
        print(f"validate_manifests: {checked} manifests valid for Kubernetes {version}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
