# How much test selection inflates DM's figure on synth-actions (RESULTS section 17); run from the repository root.
set -e
W=benchmarks/work/testsel
[ -d $W/data/train ] || videodd prepare synth-actions --out $W/data
videodd distill --config benchmarks/results/17-parity/dm-ipc1-snapshots.yaml --data $W/data --out $W/runs/dm-ipc1-snapshots
videodd evaluate $W/runs/dm-ipc1-snapshots --data $W/data --protocol published --test-selected --references random --device cpu
