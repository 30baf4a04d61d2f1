#!/usr/bin/env bash
# Comment step of action.yml: post the review's JSON as the sticky PR comment. Skipped when
# commenting is off, when the review wrote no report (a usage or git error), and outside a PR.
set -uo pipefail
if [ "${INPUT_COMMENT:-true}" != "true" ]; then
  echo "mcx-review: commenting is off" >&2; exit 0
fi
if [ -z "${REPORT_JSON:-}" ] || [ ! -f "$REPORT_JSON" ]; then
  echo "mcx-review: no report to post (see the Review step)" >&2; exit 0
fi
args=(comment "$REPORT_JSON" --tag "${INPUT_TAG:-default}" --behavior "${INPUT_BEHAVIOR:-update}")
[ "${INPUT_FAIL_ON_COMMENT_ERROR:-false}" != "true" ] || args+=(--fail-on-comment-error)
[ -z "${PR_FROM_SHA:-}" ] || args+=(--pr-from-sha "$PR_FROM_SHA")
[ -z "${HEAD_SHA:-}" ] || args+=(--head-sha "$HEAD_SHA")
[ -z "${INPUT_BOT_LOGIN:-}" ] || args+=(--bot-login "$INPUT_BOT_LOGIN")
[ -z "${INPUT_MAX_WAIT:-}" ] || args+=(--max-wait "$INPUT_MAX_WAIT")
exec mcx-review "${args[@]}"
