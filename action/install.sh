#!/usr/bin/env bash
# Install step of action.yml: torch from the CPU wheel index, then mcx-review with its analysis
# extras from the action's own checkout, then the codebase the configs need (mmpretrain, ...).
# Inputs come in the environment (never interpolated into the script: they may hold anything).
set -euo pipefail
set -f  # requirement strings are split on whitespace but never globbed
pip=(python -m pip install --disable-pip-version-check --no-input)
if [ -n "${TORCH:-}" ]; then
  # shellcheck disable=SC2086
  "${pip[@]}" --index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" $TORCH
fi
"${pip[@]}" "${ACTION_PATH:?}[analysis]"
if [ -n "${REQUIREMENTS:-}" ]; then
  # shellcheck disable=SC2086
  "${pip[@]}" $REQUIREMENTS
fi
python -m pip list --disable-pip-version-check 2>/dev/null \
  | grep -Ei '^(torch|torchvision|fvcore|mmengine|mmcv|mmcv-lite|mmcls|mmpretrain|mcx-review) ' || true
