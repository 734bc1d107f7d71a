#!/usr/bin/env bash
# the final one-invocation CPU table for issue 12 (quiet machine)
set -uo pipefail
cd /work/main
export XDG_RUNTIME_DIR=/tmp
npm run build --silent
lscpu | grep -E 'Model name|^CPU\(s\)' > /work/final/env.txt
git log --oneline -1 >> /work/final/env.txt
date -u +%FT%TZ >> /work/final/env.txt
for d in f32 f16 q8 q4; do
  node dist/node/cli/main.js bench --model /tmp/musicgen-small-random --seconds 2 --dtype $d --json > /work/final/ours-$d.json 2> /work/final/ours-$d.log
  echo "$d done $(date -u +%T)"
done
.venv-ref/bin/python tools/bench_torch.py --model /tmp/musicgen-small-random --seconds 2 --json > /work/final/torch-f32.json 2> /work/final/torch-f32.log
.venv-ref/bin/python tools/bench_torch.py --model /tmp/musicgen-small-random --seconds 2 --int8-dynamic --json > /work/final/torch-int8.json 2> /work/final/torch-int8.log
date -u +%FT%TZ >> /work/final/env.txt
echo all done
