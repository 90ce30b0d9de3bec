#!/bin/sh
# A shell "training script": reads its parameters from the environment the
# command method sets (ASYMPTOTE_PARAM_<name>) and writes one JSON object a
# line to $ASYMPTOTE_METRICS. examples/script-shell.yaml runs it.
set -eu
width=$ASYMPTOTE_PARAM_width
steps=$ASYMPTOTE_PARAM_steps
step=1
while [ "$step" -le "$steps" ]; do
  # A loss that falls with steps toward an asymptote set by the width.
  awk -v w="$width" -v s="$step" -v seed="$ASYMPTOTE_SEED" 'BEGIN {
    loss = 1 + 8 / w + 4 / s + 0.01 * seed
    printf "{\"step\": %d, \"val_loss\": %.6f, \"params\": %d}\n", s, loss, 100 * w
  }' >> "$ASYMPTOTE_METRICS"
  step=$((step + 1))
done
echo "done after $steps steps" >&2
