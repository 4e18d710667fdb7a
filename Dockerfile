# syntax=docker/dockerfile:1
# The registry's image: `docker build -t agent-registry .` from the repository root (BuildKit,
# the default builder since Docker 23). Migrations are compiled into the binary (sqlx::migrate!),
# so the runtime stage needs nothing from the source tree.

# Build and runtime on the same Debian release (trixie): a binary linked against a newer glibc
# than the runtime's does not start.
FROM rust:1.95-slim-trixie AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crates.io downloads and compiled dependencies between builds, so a
# change to the sources rebuilds only the workspace crates. The target directory is a cache, not
# a layer: the binary is copied out of it in the same step. Stripping here (not in Cargo.toml)
# keeps local release builds' line tables for benchmarks and backtraces; 207 MB -> 34 MB.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked -p agent-registry \
    && install -D target/release/agent-registry /out/agent-registry

FROM debian:trixie-slim
# ca-certificates: OIDC discovery, JWKS and A2A `jku` fetches are https.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /data registry \
    && install -d -o 10001 -g 10001 /data
COPY --from=build /out/agent-registry /usr/local/bin/agent-registry
# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
WORKDIR /data
VOLUME /data
ENV AGENT_REGISTRY_LISTEN=0.0.0.0:8080 \
    AGENT_REGISTRY_DATABASE_URL=sqlite:///data/agent-registry.db
EXPOSE 8080
# The image has no curl and the binary no client mode: bash (part of every Debian image) opens
# the port with /dev/tcp and sends one HTTP/1.0 request, which the connections kept for probes
# answer even when the service is at --max-connections. /healthz (the process serves), not
# /readyz: an orchestrator that replaces unhealthy containers should not do so while the
# database is unreachable, which the process rides out by itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${AGENT_REGISTRY_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r _ status _ <&3 && [ \"$status\" = 200 ]"]
ENTRYPOINT ["agent-registry"]
CMD ["serve"]
