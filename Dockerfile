# The image of one Chromaline service, chosen by build argument; build it from the repository root:
#
#     docker build --build-arg SERVICE=detector --build-arg PORT=8081 -t chromaline/detector .
#
# (`make images` builds every service with the arguments docker-compose.yml gives them.)
#
# The builder installs the service's package from uv.lock into /opt/chromaline: first the
# third-party packages alone, from the workspace's pyproject.toml files and the lock, in a layer
# that a code change does not invalidate; then the workspace packages the service needs
# (chromaline-common, chromaline-engine for the workers, the service itself) as wheels. The runtime
# stage copies that environment alone (no sources, no uv, no build tools), runs as UID 10001 and
# writes nothing outside /tmp, so the root filesystem can be mounted read-only.
#
# Only classic Dockerfile instructions are used, so the legacy builder and BuildKit both build it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# The workspace's manifests only: their content, not the sources' timestamps, keys the dependency layer.
FROM ${PYTHON_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir /manifests \
    && find . \( -name pyproject.toml -o -name uv.lock \) -exec cp --parents {} /manifests \; \
    && find /manifests -exec touch --no-dereference --date=@0 {} +

FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<service>" >&2; exit 1; }
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/chromaline
WORKDIR /src
COPY --from=manifests /manifests/ /src/
RUN uv sync --frozen --no-dev --no-editable --no-install-workspace --package "chromaline-${SERVICE}"
COPY . /src
RUN uv sync --frozen --no-dev --no-editable --package "chromaline-${SERVICE}" \
    && test -x "/opt/chromaline/bin/chromaline-${SERVICE}"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --gid 10001 chromaline \
    && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin chromaline
ARG SERVICE
ARG PORT
RUN test -n "${PORT}" || { echo "build with --build-arg PORT=<the service's port>" >&2; exit 1; }
COPY --from=builder /opt/chromaline /opt/chromaline
ENV PATH=/opt/chromaline/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    CHROMALINE_ENVIRONMENT=production \
    CHROMALINE_LOG_FORMAT=json \
    CHROMALINE_SERVICE=${SERVICE} \
    CHROMALINE_HEALTHZ_URL=http://127.0.0.1:${PORT}/healthz
WORKDIR /tmp
USER 10001:10001
EXPOSE ${PORT}
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['CHROMALINE_HEALTHZ_URL'], timeout=4)"]
# The shell only expands the service's name; exec hands PID 1 to the service itself.
CMD ["/bin/sh", "-c", "exec chromaline-${CHROMALINE_SERVICE} serve"]
# Last, so that a new revision relabels the image without copying its environment again.
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="chromaline-${SERVICE}" \
      org.opencontainers.image.description="Chromaline ${SERVICE} service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
