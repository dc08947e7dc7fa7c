# Docker images of the Clari Copilot connector: one binary, two images.
#
#   docker build --target source      -t airbyte/source-clari-copilot:dev .
#   docker build --target destination -t airbyte/destination-clari-copilot:dev .
#
# `source` is the last stage, so a plain `docker build .` builds the source image.
# The io.airbyte.* labels must match acceptance-tests/metadata.yaml and
# acceptance-tests/destination/metadata.yaml; acceptance-tests/docker-images.sh checks them.
# See docs/docker.md.

# ---- build: a release binary from the locked dependency set -------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /build

# The whole (.dockerignore'd) tree: Cargo.toml may name tests and benches that must exist, and
# the workspace's other member, sandbox/, must be there for cargo to load the workspace.
COPY . .
# Cache mounts keep downloaded crates and compiled dependencies between builds (BuildKit and
# buildah); the binary is copied out of the cached target directory in the same step. Only the
# connector's binary is built: the sandbox is a dev-dependency, so it is not compiled at all.
RUN --mount=type=cache,id=clari-copilot-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=clari-copilot-target,target=/build/target,sharing=locked \
    cargo build --release --locked --package clari-copilot-connector --bin source-clari-copilot \
    && cp target/release/source-clari-copilot /usr/local/bin/source-clari-copilot

# ---- runtime: Debian slim, the binary, the CA bundle, a non-root user ----------------------
FROM debian:bookworm-slim AS runtime
# TLS is rustls (no OpenSSL in the binary or the image): only the CA bundle is needed, so it
# is copied from the build stage instead of installing ca-certificates, which pulls in openssl.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN groupadd --system --gid 1000 airbyte \
    && useradd --system --uid 1000 --gid airbyte --home-dir /airbyte --create-home \
       --shell /usr/sbin/nologin airbyte
COPY --from=build /usr/local/bin/source-clari-copilot /usr/local/bin/source-clari-copilot
# The program name selects the role: destination-clari-copilot runs the destination.
RUN ln -s source-clari-copilot /usr/local/bin/destination-clari-copilot
WORKDIR /airbyte
USER airbyte

# ---- destination image ------------------------------------------------------------------
FROM runtime AS destination
# AIRBYTE_ENTRYPOINT is the ENTRYPOINT joined with spaces: the platform runs
# `eval "$AIRBYTE_ENTRYPOINT write --config ... --catalog ..."`.
ENV AIRBYTE_ENTRYPOINT="/usr/local/bin/destination-clari-copilot"
ENTRYPOINT ["/usr/local/bin/destination-clari-copilot"]
LABEL io.airbyte.name="airbyte/destination-clari-copilot" \
      io.airbyte.version="0.1.0"

# ---- source image (last, so the default target) -------------------------------------------
FROM runtime AS source
ENV AIRBYTE_ENTRYPOINT="/usr/local/bin/source-clari-copilot"
ENTRYPOINT ["/usr/local/bin/source-clari-copilot"]
LABEL io.airbyte.name="airbyte/source-clari-copilot" \
      io.airbyte.version="0.1.0"
