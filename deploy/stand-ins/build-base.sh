#!/usr/bin/env bash
# Makes, without a container registry, a base image that stands in for python:3.11-slim-bookworm:
# Debian bookworm (whose python3 is 3.11) bootstrapped with mmdebstrap from the Debian mirror
# this machine's apt uses, imported with `docker import`. The machine's extra CA certificates
# (/usr/local/share/ca-certificates) are trusted inside, so pip and uv reach the package index
# through the same TLS-inspecting egress as the host.
#
#     deploy/stand-ins/build-base.sh [TAG]      # default TAG: python:3.11-slim-bookworm
set -euo pipefail

tag=${1:-python:3.11-slim-bookworm}
sources=${DEBIAN_SOURCES:-}
if [[ -z "$sources" ]]; then
    for candidate in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [[ -s "$candidate" ]]; then
            sources=$candidate
            break
        fi
    done
fi
if [[ -z "$sources" ]]; then
    echo "build-base: no Debian apt sources found; set DEBIAN_SOURCES" >&2
    exit 1
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "build-base: installing mmdebstrap (Debian's package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi

# The root file system goes to a file first: piped straight into `docker import`, a failed
# bootstrap would still leave an empty image under the tag.
rootfs=$(mktemp --suffix=.tar)
trap 'rm -f "$rootfs"' EXIT

echo "build-base: bootstrapping bookworm from $sources into $tag"
mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --include=ca-certificates,python3,python3-pip,python-is-python3,netbase,tzdata \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true' \
    --customize-hook='chroot "$1" update-ca-certificates --fresh >/dev/null' \
    --customize-hook='rm -f "$1"/usr/lib/python3.*/EXTERNALLY-MANAGED' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb' \
    bookworm "$rootfs" "$sources"
docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'LABEL io.chromaline.stand-in=true' \
        --change 'CMD ["python3"]' \
        --message "python:3.11-slim-bookworm stand-in (Debian bookworm python3)" \
        "$rootfs" "$tag"
docker image ls "$tag"
