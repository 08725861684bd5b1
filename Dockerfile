# Roadie's image: `roadie run` (the operator) by default, and `roadie jvs ...` for the Workspace
# engine's Jobs, which override the command. Non-root (65532, numeric so that the kubelet can check
# runAsNonRoot) and fit for a read-only root filesystem: nothing writes outside /tmp (HOME), which
# the Deployment mounts as an emptyDir. image/build.py builds the same image without a container
# engine and takes its runtime settings (ENV, USER, ENTRYPOINT, CMD, WORKDIR, LABEL) from this file.

FROM python:3.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The wheel first, then a venv without pip (the runtime needs none) filled by the builder's pip.
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/roadie \
    && python -m pip --python /opt/roadie/bin/python install --no-cache-dir /wheels/roadie-*.whl

FROM python:3.11-slim-bookworm
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="roadie" \
      org.opencontainers.image.description="A Kubernetes operator that sets up short-lived environments and workloads, keeps them running, and strikes them on time." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/roadie/roadie"
ENV PATH=/opt/roadie/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8 \
    HOME=/tmp
RUN groupadd --system --gid 65532 roadie \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin roadie
COPY --from=builder /opt/roadie /opt/roadie
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["roadie"]
CMD ["run"]
