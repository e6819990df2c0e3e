# Shared by the benchmarks: builds what they run, all locally (no registry is needed).
# Sourced, not run.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FIXTURE_IMAGE=healthther-fixture:bench

# The static fixture binary in a FROM scratch image, as the tests build it.
build_fixture_image() {
  cargo build -q --release -p fixture \
    --target x86_64-unknown-linux-musl --target-dir "$root/target/static" --manifest-path "$root/Cargo.toml"
  local ctx
  ctx=$(mktemp -d)
  cp "$root/target/static/x86_64-unknown-linux-musl/release/fixture" "$root/fixture/Dockerfile" "$ctx/"
  docker build -q -t "$FIXTURE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# The release binary of healthther, as users run it.
build_healthther() {
  cargo build -q --release --bin healthther --manifest-path "$root/Cargo.toml"
  HEALTHTHER="$root/target/release/healthther"
}
