#!/usr/bin/env bash
# Makes every third-party image docker-compose.yml and the test fixtures use, when it is neither
# present nor pullable: the Python base (build-base.sh) and stand-ins built on it from Debian
# packages (RabbitMQ with the management plugin, PostgreSQL) and moto (S3), each tagged with the
# names the real images have. Stand-ins carry the label io.chromaline.stand-in=true; run the stack
# on them with the CI override deploy/stand-ins/compose.yml (see docs/deploy.md).
#
#     deploy/stand-ins/build.sh            # pull what can be pulled, build the rest
#     PULL=never deploy/stand-ins/build.sh # do not try the registry
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

base=python:3.11-slim-bookworm
declare -A standin_names=(
    [rabbitmq]="rabbitmq:3.13-management rabbitmq:3.10"
    [postgres]="postgres:16 postgres:16-alpine"
    [s3]="minio/minio:RELEASE.2025-04-22T22-12-26Z minio/mc:RELEASE.2025-04-16T18-13-26Z minio/minio:RELEASE.2022-12-02T19-19-22Z"
)

present() { docker image inspect "$1" >/dev/null 2>&1; }

pulled() {
    [[ "${PULL:-try}" == never ]] && return 1
    timeout "${PULL_TIMEOUT:-60}" docker pull --quiet "$1" >/dev/null 2>&1
}

if present "$base" || pulled "$base"; then
    echo "stand-ins: $base is there"
else
    "$here/build-base.sh" "$base"
fi

for standin in rabbitmq postgres s3; do
    missing=()
    for name in ${standin_names[$standin]}; do
        present "$name" || pulled "$name" || missing+=("$name")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "stand-ins: the $standin images are there"
        continue
    fi
    echo "stand-ins: building $standin for ${missing[*]}"
    tags=()
    for name in "${missing[@]}"; do
        tags+=(--tag "$name")
    done
    docker build --quiet --build-arg "BASE_IMAGE=$base" "${tags[@]}" "$here/$standin" >/dev/null
done
