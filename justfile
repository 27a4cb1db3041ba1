# Everyday commands. Each is a shortcut for plain cargo (see README).

# build everything (release) and run the gateway
run *ARGS:
    cargo xtask run {{ARGS}}

# the whole test suite (lint, unit, integration, SDK end-to-end)
test:
    cargo xtask test

# a first look with no keys: a gateway over a simulated fleet of free providers
demo *ARGS:
    cargo xtask demo {{ARGS}}

# build the wasm components and the host (debug)
build:
    cargo xtask build

# rustfmt + clippy for host and guests
lint:
    cargo xtask lint

# load benchmark: Freeway vs direct calls to the simulator
bench *ARGS:
    cargo xtask bench {{ARGS}}

# quick benchmark (3 short rounds)
bench-quick:
    cargo xtask bench --quick

# fleet benchmark: quota-aware routing over a simulated free fleet at 80 % and 120 % load
bench-fleet:
    cargo xtask bench --fleet

# client key checks: gateway CPU per request with one static key vs 10,000 virtual keys
bench-keys:
    cargo xtask bench --keys

# soak: 10 minutes (or --minutes N) of mixed traffic with reloads; fails if memory or fds grow
soak *ARGS:
    cargo xtask soak {{ARGS}}

# classifier accuracy, confusion matrix and auto's choices on the labelled prompt set
eval-routing *ARGS:
    cargo xtask eval-routing {{ARGS}}

# run the upstream simulator on :9000
sim:
    cargo run -p freeway-sim -- --listen 127.0.0.1:9000

# the SDK end-to-end suites only
e2e:
    cargo xtask e2e

# cargo-fuzz targets (nightly): each for 60 s, or `just fuzz --seconds 300 sse scrub`
fuzz *ARGS:
    cargo xtask fuzz {{ARGS}}
