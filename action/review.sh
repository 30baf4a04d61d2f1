#!/usr/bin/env bash
# Review step of action.yml. Writes the JSON and Markdown reports under $RUNNER_TEMP; mcx-review
# itself appends the step summary and the outputs report-json, report-markdown, changed and
# budget-exceeded. The exit code becomes an output so the comment step still runs on a failing
# budget; the action's last step fails the job with it.
set -uo pipefail
set -f
out="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mcx-review"
mkdir -p "$out"
echo "report-dir=$out" >> "$GITHUB_OUTPUT"
event_field() {  # a field of the webhook payload, e.g. pull_request.base.sha ("" when absent)
  python - "$1" <<'PY'
import json, os, sys
try:
    node = json.load(open(os.environ["GITHUB_EVENT_PATH"], encoding="utf-8"))
    for key in sys.argv[1].split("."):
        node = node[key]
except Exception:
    node = ""
print(node if isinstance(node, str) else "")
PY
}
base="${INPUT_BASE:-}"
head="${INPUT_HEAD:-}"
if [ -z "$base" ]; then
  base="$(event_field pull_request.base.sha)"
  [ -n "$base" ] || base="$(event_field before)"
  case "$base" in 0000000000000000000000000000000000000000) base="" ;; esac
  [ -n "$base" ] || base="HEAD~1"
fi
if [ -z "$head" ]; then
  head="$(event_field pull_request.head.sha)"
  [ -n "$head" ] || head="HEAD"
fi
args=(review --base "$base" --head "$head" --format text
      --json "$out/report.json" --markdown "$out/report.md")
[ -z "${CACHE_DIR:-}" ] || args+=(--cache-dir "$CACHE_DIR")
if [ -n "${INPUT_SHAPE:-}" ]; then
  # shellcheck disable=SC2206
  shape=($INPUT_SHAPE)
  args+=(--shape "${shape[@]}")
fi
# No settings input: the review reads the BASE revision's .mcx-review.yaml (plus what the head's
# adds or tightens), never the checkout's copy as a whole -- a PR must not relax its own gates.
[ -z "${INPUT_SETTINGS:-}" ] || args+=(--config "$INPUT_SETTINGS")
if [ -n "${INPUT_CONFIGS:-}" ]; then
  # shellcheck disable=SC2206
  globs=($INPUT_CONFIGS)
  for g in "${globs[@]}"; do args+=(--configs "$g"); done
fi
if [ -n "${INPUT_ARGS:-}" ]; then
  # shellcheck disable=SC2206
  extra=($INPUT_ARGS)
  args+=("${extra[@]}")
fi
echo "mcx-review ${args[*]}" >&2
mcx-review "${args[@]}"
code=$?
echo "exit-code=$code" >> "$GITHUB_OUTPUT"
exit 0
