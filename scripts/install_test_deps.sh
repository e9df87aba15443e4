#!/usr/bin/env bash
# System packages the test suite needs beyond Python: NLTK's WordNet (checks the shipped lemma
# table), Chromium (the tagging page's browser tests) and Java (PySpark; present on most machines).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/install_wordnet.sh"
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v java >/dev/null || need+=(default-jre-headless)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "install_test_deps: please install: ${need[*]} (tests needing them will fail)" >&2
  fi
fi
