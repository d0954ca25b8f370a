#!/usr/bin/env bash
# Installs the system programs the local stack (and, with --tests, the test suite) needs and
# this machine lacks, from Debian's or Ubuntu's packages:
#   always:   Python's venv module where the distribution splits it off (Debian, Ubuntu), a Java
#             runtime and Maven (Kafka from Maven Central's jars), openssl (the broker's TLS
#             listeners; keytool comes with the JRE)
#   --tests:  Chromium (the dashboard test drives it with Playwright)
# On any other system it names what is missing and stops (macOS: `brew install openjdk@17 maven`).
set -euo pipefail

missing=()
"${PYTHON:-python3}" -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v openssl >/dev/null || missing+=(openssl)
if [[ "${1:-}" == --tests ]]; then
  command -v chromium >/dev/null || missing+=(chromium)
fi
((${#missing[@]})) || exit 0

if ! command -v apt-get >/dev/null; then
  printf 'system-deps.sh: missing %s; install them with your package manager ' "${missing[*]}" >&2
  printf '(macOS: brew install openjdk@17 maven)\n' >&2
  exit 1
fi
sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { printf 'system-deps.sh: run as root to install %s\n' "${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
printf 'system-deps.sh: installing %s\n' "${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
