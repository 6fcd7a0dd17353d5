#!/bin/sh
# Benchmarks for romfs-embedded: lookup cost (mapped and non-mapped flash)
# and update cost (A/B and single slot). Prints Markdown tables; the
# committed results are in bench/embedded-RESULTS.md.
set -eu
cd "$(dirname "$0")/../.."
cargo run --release -q -p romfs-embedded --example bench
