# healthther: a statically linked binary in an otherwise empty image.
#
#   docker build -t healthther .
#
# The runtime stage (from "FROM scratch AS runtime" on) is the shipped layout. The tests build it
# from a binary compiled on the host, since no base image can be pulled where they run; they
# take this file's runtime stage as it is, swapping only the COPY --from=build line.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY fixture fixture
# The Rust target for this machine, from the one small case in .ci/lib/rust-target (amd64,
# arm64, armhf; .ci/arm proves the ARM ones under qemu). An unknown one stops the build with
# one line naming it and `uname -m`. A musl target needs musl-gcc (ring's C) and its std,
# which the image lacks; the glibc ones are the image's own.
COPY .ci/lib/rust-target /usr/local/bin/rust-target
RUN target="$(rust-target "$(dpkg --print-architecture)")" \
 && case "$target" in *-musl*) \
      { command -v musl-gcc >/dev/null \
        || { apt-get update && apt-get install -y --no-install-recommends musl-tools; }; } \
      && { [ -d "$(rustc --print sysroot)/lib/rustlib/$target" ] || rustup target add "$target"; } ;; \
    esac \
 && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --bin healthther --target "$target" \
 && mkdir /out \
 && cp "target/$target/release/healthther" /out/healthther

FROM scratch AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="healthther" \
      org.opencontainers.image.description="Watches named Docker containers and revives them when they die or turn unhealthy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/healthther/healthther"
COPY --from=build /out/healthther /usr/local/bin/healthther
ENV PATH=/usr/local/bin \
    HEALTH_CONTROL_SOCKET=/run/healthther/control.sock
WORKDIR /app
# Alive only while the watch loop keeps seeing the engine.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["healthther", "probe"]
ENTRYPOINT ["healthther"]
