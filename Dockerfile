# syntax=docker/dockerfile:1
#
# Freeway in a container: `docker build -t freeway .` (BuildKit). Not exercised in CI: the test
# command lints this file with hadolint and checks it against the binary (tests/deploy/check.py),
# but no image is built there. See README.md, "Deployment".

# ---- build: the gateway, with the wasm components its build script compiles and embeds --------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# rust-toolchain.toml pins the toolchain (this image's) and lists the wasm32-wasip2 target
COPY rust-toolchain.toml ./
RUN rustup target add wasm32-wasip2
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p freeway \
    && install -D -m 0755 target/release/freeway /out/freeway \
    && install -d -m 0700 /out/data /out/cache

# ---- runtime: glibc, CA certificates and the binary; no shell, no package manager -------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/freeway /usr/local/bin/freeway
# the volumes' mount points, owned by the user the gateway runs as (a new named volume copies
# them, ownership included); the component cache must be a folder this user owns
COPY --from=build --chown=65532:65532 /out/data/ /var/lib/freeway/
COPY --from=build --chown=65532:65532 /out/cache/ /var/cache/freeway/
# vault, master key file, usage database (SQLite unless FREEWAY_DATABASE_URL), quota and model state
ENV FREEWAY_DATA_DIR=/var/lib/freeway \
    FREEWAY_CACHE_DIR=/var/cache/freeway \
    FREEWAY_LISTEN=0.0.0.0:8000 \
    FREEWAY_URL=http://127.0.0.1:8000
# relative paths in a mounted configuration (providers/, policies/) land on the data volume
WORKDIR /var/lib/freeway
USER 65532:65532
EXPOSE 8000
VOLUME ["/var/lib/freeway", "/var/cache/freeway"]
# 0 when GET /ready answers 200 (a provider can serve); the image has no curl
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["freeway", "ready", "--url", "http://127.0.0.1:8000"]
ENTRYPOINT ["freeway"]
# A non-loopback listen address needs client keys: run with -e FREEWAY_API_KEY=... (several
# separated by commas). A configuration file is optional: mount it read-only and point
# FREEWAY_CONFIG at it (e.g. -v ./freeway.toml:/etc/freeway/freeway.toml:ro
# -e FREEWAY_CONFIG=/etc/freeway/freeway.toml); without one, providers come from their key
# variables (GROQ_API_KEY, OPENROUTER_API_KEY, ...).
CMD ["serve"]
