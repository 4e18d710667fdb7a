# Release image: a static-ish binary on a slim base, running as a non-root user.
FROM rust:1.95-slim AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p agent-registry

FROM debian:bookworm-slim
RUN useradd --uid 10001 --no-create-home registry && mkdir /data && chown registry /data
COPY --from=build /src/target/release/agent-registry /usr/local/bin/agent-registry
USER registry
ENV AGENT_REGISTRY_LISTEN=0.0.0.0:8080 AGENT_REGISTRY_DATABASE_URL=sqlite:///data/agent-registry.db
EXPOSE 8080
ENTRYPOINT ["agent-registry"]
CMD ["serve"]
