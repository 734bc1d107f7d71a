#!/usr/bin/env bash
# The GPU benchmark in one command, for a machine with a GPU but no Node and no network (the NVIDIA H200 lent
# through the device tool: CUDA, PyTorch and transformers installed, Vulkan once the loader is unpacked).
#
#   bash tools/gpu-bench.sh --pack [--test]   HERE (Node, npm deps, apt): fill .gpu-pack/ (git-ignored) with
#                                             everything that machine lacks, check the size; --test also runs the
#                                             packed Node + bench on weights/tiny-musicgen with this machine's Vulkan
#   bash tools/gpu-bench.sh                   THERE, in the repository root, with .gpu-pack carried along:
#                                             builds random full-size models with its transformers and runs our
#                                             bench and PyTorch CUDA eager side by side, writing to $OUT
#
# What travels (.gpu-pack/, ~26 MB; the device tool moves the working tree plus carried paths, 64 MiB in all):
#   node.xz                    this machine's Node binary (linux-x64), stripped, xz -9e (~21 MB)
#   bench.mjs, probe.mjs       src/cli/bench.ts and probe.ts bundled with esbuild (every npm dependency inlined but
#                              webgpu), and check.mjs: tools/gpu-check.ts, the greedy-generation parity cases
#   webgpu/                    the `webgpu` package's index.js + package.json, dist/linux-x64/dawn.node.xz (stripped, ~4 MB)
#   debs/                      Debian's Vulkan/GL loader packages (libvulkan1 …), unpacked with dpkg -x there
#
# There, it stops at once when Dawn finds no GPU adapter (GPU_BENCH_ANY_ADAPTER=1 runs on a CPU one: a trial
# run here). It checks correctness on the adapter first: the greedy-generation parity cases of
# test/model/generate.test.ts (check.mjs, tiny models). Then per model size in $GPU_BENCH_MODELS (default
# "small large"): tools/make_bench_model.py --size S --device cuda (random weights, the published architecture);
# for the sizes in $GPU_BENCH_PARITY (default small) transformers' probe outputs on the CPU against `probe --dtype D`
# for D in $GPU_BENCH_PARITY_DTYPES (default f32; tools/fixtures/compare_probe.py); tools/bench_torch.py --device
# cuda (f32, then f16); `bench --dtype D` for every D that `bench --dtype` accepts (f32 alone when it has none); and
# for the sizes in $GPU_BENCH_PROFILE (default small) `bench --profile` on f32. Every
# step has a time limit, and steps that would start after $GPU_BENCH_BUDGET_S seconds (default 540, inside the
# device tool's 10-minute command) are skipped and marked so: what finished always comes back.
#
# Output in $OUT (default out/gpu-bench): results.jsonl (one JSON object per run, tagged), table.md (the table
# for BENCHMARKS.md), log.txt (everything printed), env.txt (nvidia-smi, lscpu, versions). Four files: the device
# tool brings back at most 8.
#
# With the device tool (from the repository root of the session's checkout; copy .gpu-pack there if it was built
# in another worktree):
#   bash tools/gpu-bench.sh --pack --test
#   run(command: "bash tools/gpu-bench.sh", carry: [".gpu-pack"], timeout_s: 600)
# and for one size only: "GPU_BENCH_MODELS=large bash tools/gpu-bench.sh".

set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACK="$ROOT/.gpu-pack"
LIMIT_BYTES=$((64 * 1024 * 1024))

die() { echo "gpu-bench: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------- packing
pack() {
  local test=0
  [[ "${1:-}" == "--test" ]] && test=1
  command -v node >/dev/null || die "--pack needs node"
  [[ $(node -p process.arch) == x64 && $(node -p process.platform) == linux ]] || die "--pack needs linux-x64 node (the GPU machine is x86-64)"
  grep -qxF '/.gpu-pack/' "$ROOT/.gitignore" || die ".gitignore must list /.gpu-pack/"
  mkdir -p "$PACK/webgpu/dist/linux-x64" "$PACK/debs"
  local NODE_BIN DAWN
  NODE_BIN=$(readlink -f "$(command -v node)")
  DAWN="$ROOT/node_modules/webgpu/dist/linux-x64/dawn.node"
  [[ -f $DAWN ]] || die "$DAWN missing (npm install)"
  # xz -9e of 100 MB takes minutes on a busy machine: redone only when the source changes
  xzcached() { # src dst
    local stamp
    stamp="$(stat -c '%s %Y' "$1") $1"
    if [[ -f $2 && -f $2.src && $(cat "$2.src") == "$stamp" ]]; then return; fi
    echo "compressing $1 …"
    # symbols are not needed to run (node 99 → 86 MB, dawn.node 21.5 → 17.5 MB before xz)
    local src=$1
    if command -v strip >/dev/null && strip -o "$2.stripped" "$1" 2>/dev/null; then src=$2.stripped; fi
    nice xz -9e -T1 -c "$src" >"$2.tmp" && mv "$2.tmp" "$2" && echo "$stamp" >"$2.src"
    rm -f "$2.stripped"
  }
  xzcached "$NODE_BIN" "$PACK/node.xz"
  xzcached "$DAWN" "$PACK/webgpu/dist/linux-x64/dawn.node.xz"
  cp "$ROOT/node_modules/webgpu/index.js" "$ROOT/node_modules/webgpu/package.json" "$PACK/webgpu/"
  (cd "$ROOT" && node tools/embed-shaders.mjs) || die "embedding shaders failed"
  (cd "$ROOT" && node --input-type=module -e "
    import { build } from 'esbuild';
    await build({
      entryPoints: { bench: 'src/cli/bench.ts', probe: 'src/cli/probe.ts', check: 'tools/gpu-check.ts' },
      bundle: true, platform: 'node', format: 'esm', target: 'node20', outdir: '$PACK', outExtension: { '.js': '.mjs' },
      external: ['webgpu'], minify: true, legalComments: 'none', logLevel: 'warning',
      // audio-decode imports each codec lazily, and npm may lack some: only WAV is read there (the check's melody)
      plugins: [{ name: 'codecs', setup(b) { b.onResolve({ filter: /^@audio.decode-/ }, (a) => a.path.endsWith('-wav') ? undefined : { path: a.path, external: true }); } }],
      // CommonJS dependencies call require(); an ES module bundle has none of its own
      banner: { js: \"import { createRequire as __mgRequire } from 'node:module'; const require = __mgRequire(import.meta.url);\" },
    });") || die "bundling bench, probe and the check failed"
  if ! ls "$PACK"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
    (cd "$PACK/debs" && apt-get -o APT::Architecture=amd64 download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2) \
      || die "apt-get download of the Vulkan loader packages failed"
  fi
  local pack_bytes tree_bytes
  pack_bytes=$(du -sb "$PACK" | cut -f1)
  # what the device tool moves: tracked + untracked-not-ignored files, plus the pack
  tree_bytes=$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
  awk -v p="$pack_bytes" -v t="$tree_bytes" 'BEGIN { m = 1048576; printf "pack %.1f MiB + working tree %.1f MiB = %.1f MiB (limit 64 MiB)\n", p / m, t / m, (p + t) / m }'
  ((pack_bytes + tree_bytes < LIMIT_BYTES)) || die "over the 64 MiB the device tool carries"
  if ((test)); then
    local T
    T=$(mktemp -d)
    unpack_to "$T"
    echo "packed node: $("$T/node" --version)"
    XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} "$T/node" "$T/bench.mjs" --model "$ROOT/weights/tiny-musicgen" --seconds 0.5 \
      --repeat 1 --warmup 0 --json >"$T/out.json" || die "the packed bench failed"
    tail -n 1 "$T/out.json" | "$T/node" -e '
      const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
      if (!(r.steps > 0 && r.per_step_ms > 0)) { console.error("no steps in", r); process.exit(1); }
      console.log(`packed bench OK on ${r.device}: ${r.steps} steps, ${r.per_step_ms.toFixed(1)} ms/step, load ${r.load_s.toFixed(2)} s`);
    ' || die "the packed bench printed no result"
    rm -rf "$T"
  fi
}

# Unpacks Node, the bundle and dawn.node into DIR (DIR/node, DIR/bench.mjs, DIR/node_modules/webgpu/…).
unpack_to() {
  local D=$1
  mkdir -p "$D/node_modules/webgpu/dist/linux-x64"
  unxz_to() { # src dst: xz where there is one, else Python's lzma
    if command -v xz >/dev/null; then xz -dc "$1" >"$2"
    else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
  }
  unxz_to "$PACK/node.xz" "$D/node" && chmod +x "$D/node"
  unxz_to "$PACK/webgpu/dist/linux-x64/dawn.node.xz" "$D/node_modules/webgpu/dist/linux-x64/dawn.node"
  cp "$PACK/webgpu/index.js" "$PACK/webgpu/package.json" "$D/node_modules/webgpu/"
  cp "$PACK/bench.mjs" "$PACK/probe.mjs" "$PACK/check.mjs" "$D/"
  # the check reads test/fixtures beside its bundle (test/helpers.ts: FIXTURES)
  ln -sfn "$ROOT/test/fixtures" "$D/fixtures"
}

# ---------------------------------------------------------------------------------------------- on the GPU box
run_there() {
  [[ -f $PACK/node.xz && -f $PACK/bench.mjs ]] || die "$PACK is missing: run 'bash tools/gpu-bench.sh --pack' where Node is, and carry .gpu-pack"
  OUT=${OUT:-$ROOT/out/gpu-bench}
  mkdir -p "$OUT"
  local LOG=$OUT/log.txt RES=$OUT/results.jsonl START=$SECONDS
  local BUDGET=${GPU_BENCH_BUDGET_S:-540} SECS=${GPU_BENCH_SECONDS:-2} REPEAT=${GPU_BENCH_REPEAT:-3}
  : >"$RES"
  exec > >(tee -a "$LOG") 2>&1
  echo "gpu-bench $(date -u +%FT%TZ) in $ROOT, budget ${BUDGET} s"

  local W=/tmp/gpu-bench
  unpack_to "$W" || die "unpacking failed"
  # the Vulkan loader, only where the machine has none (dpkg -x into / as the device tool's notes say)
  if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
    for f in "$PACK"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
  local NODE=$W/node BENCH=$W/bench.mjs
  # which adapter Dawn picks: point the loader at NVIDIA's ICD when the default search finds only a CPU one or none
  adapter() {
    (cd "$W" && timeout 60 "$NODE" --input-type=module -e "
      const { create, globals } = await import('webgpu'); Object.assign(globalThis, globals);
      const gpu = create([]); const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
      console.log(a ? [a.info.vendor, a.info.architecture, a.info.description].join(' / ') : 'none');
      process.exit(0);" 2>/dev/null | tail -n 1)
  }
  local A
  A=$(adapter)
  if [[ -z $A || $A == none || $A == *llvmpipe* || $A == *swiftshader* ]]; then
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
      [[ -f $icd ]] && { export VK_DRIVER_FILES=$icd; break; }
    done
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    A=$(adapter)
  fi
  echo "WebGPU adapter: ${A:-none}${VK_DRIVER_FILES:+ (VK_DRIVER_FILES=$VK_DRIVER_FILES)}"

  {
    echo "date: $(date -u +%FT%TZ)"
    echo "adapter: ${A:-none}"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
    lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Socket' 2>&1
    echo "node: $("$NODE" --version)"
    "${GPU_BENCH_PYTHON:-python3}" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1
  } >"$OUT/env.txt"
  cat "$OUT/env.txt"
  if [[ -z $A || $A == none || $A == *llvmpipe* || $A == *swiftshader* ]] && [[ ${GPU_BENCH_ANY_ADAPTER:-0} != 1 ]]; then
    # no GPU adapter: stop before spending device time on CPU rows, and say what the loader saw
    { ldconfig -p | grep -i vulkan; ls -l /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d; } 2>&1
    echo "{\"tag\": \"adapter\", \"failed\": \"no GPU adapter: ${A:-none}\"}" >>"$RES"
    die "no GPU adapter (${A:-none}); set GPU_BENCH_ANY_ADAPTER=1 to run on it anyway"
  fi

  # the dtypes `bench --dtype` accepts: given an invalid one, commander lists them while parsing ("Allowed choices
  # are f32, f16, q8, q4."), before any GPU work; f32 alone (no flag) when bench has no --dtype
  local DTYPES
  DTYPES=${GPU_BENCH_DTYPES:-$("$NODE" "$BENCH" --dtype none-such --kernels 2>&1 | grep -oE 'Allowed choices are [^.]*' | sed 's/Allowed choices are //; s/,/ /g')}
  local HAS_DTYPE=1
  [[ -z ${DTYPES// /} ]] && { DTYPES=f32; HAS_DTYPE=0; }
  echo "dtypes: $DTYPES"

  # step TAG LIMIT_S CMD…: runs CMD with a time limit unless the budget is spent; its last stdout line (the JSON) is
  # tagged and appended to results.jsonl
  step() {
    local tag=$1 limit=$2
    shift 2
    local left=$((BUDGET - (SECONDS - START)))
    if ((left < 20)); then
      echo "== $tag: skipped (budget spent)"
      echo "{\"tag\": \"$tag\", \"skipped\": \"time budget\"}" >>"$RES"
      return 1
    fi
    ((limit > left)) && limit=$left
    echo "== $tag (limit ${limit} s): $*"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$W/step.out"
    local rc=$?
    cat "$W/step.out"
    local last
    last=$(grep -E '^\{' "$W/step.out" | tail -n 1)
    if [[ -n $last ]]; then # a check that found differences still says which (its exit status beside it)
      echo "{\"tag\": \"$tag\", \"wall_s\": $((SECONDS - t0)), \"rc\": $rc, \"result\": $last}" >>"$RES"
    else
      echo "{\"tag\": \"$tag\", \"failed\": \"exit $rc\", \"wall_s\": $((SECONDS - t0))}" >>"$RES"
    fi
    return $rc
  }

  export PYTHONUNBUFFERED=1
  local TD=${GPU_BENCH_TORCH_DEVICE:-cuda} PY=${GPU_BENCH_PYTHON:-python3}
  # correctness on this adapter first: the greedy-generation parity cases (tiny models, test/fixtures)
  step "check-greedy" 120 "$NODE" "$W/check.mjs" --json
  # a size (small, medium, large) is built; a folder is used as it is (a test run here: weights/tiny-musicgen)
  for size in ${GPU_BENCH_MODELS:-small large}; do
    local M=/tmp/musicgen-$size-random
    if [[ -d $size ]]; then M=$(cd "$size" && pwd); size=$(basename "$M")
    elif [[ ! -f $M/bench_prompt.json ]]; then
      step "build-$size" 300 "$PY" "$ROOT/tools/make_bench_model.py" --size "$size" --device "$TD" --out "$M" || continue
    fi
    # parity of the full-size model on this adapter: transformers' outputs (CPU, f32: no TF32) for the same inputs
    # against `probe` (text.hidden, encodec codes and audio, lm.logits), compare_probe.py's tolerance
    if [[ " ${GPU_BENCH_PARITY-small} " == *" $size "* ]]; then
      local P=$W/probe-$size
      step "reference-$size" 240 env CUDA_VISIBLE_DEVICES= "$PY" "$ROOT/tools/fixtures/probe_reference.py" --model "$M" --out "$P" --steps 4 &&
        for d in ${GPU_BENCH_PARITY_DTYPES:-f32}; do
          step "parity-$size-$d" 240 bash -c '"$1" "$2" --model "$3" --dtype "$4" --inputs "$5.inputs.safetensors" --output "$5.$4.safetensors" >&2 &&
            "$6" "$7" "$5.outputs.safetensors" "$5.$4.safetensors" --json' _ "$NODE" "$W/probe.mjs" "$M" "$d" "$P" "$PY" "$ROOT/tools/fixtures/compare_probe.py"
        done
    fi
    step "torch-$size-f32" 240 "$PY" "$ROOT/tools/bench_torch.py" --model "$M" --device "$TD" --seconds "$SECS" --repeat "$REPEAT" --json
    step "torch-$size-f16" 240 "$PY" "$ROOT/tools/bench_torch.py" --model "$M" --device "$TD" --dtype float16 --seconds "$SECS" --repeat "$REPEAT" --json
    for d in $DTYPES; do
      local flag=()
      ((HAS_DTYPE)) && flag=(--dtype "$d")
      step "webgpu-$size-$d" "${GPU_BENCH_STEP_LIMIT_S:-300}" "$NODE" "$BENCH" --model "$M" "${flag[@]}" --seconds "$SECS" --repeat "$REPEAT" --json
    done
    # where a step's time goes on this adapter (bench --profile: the step split by kind, dispatch cost, bandwidth)
    if [[ " ${GPU_BENCH_PROFILE-small} " == *" $size "* ]]; then
      step "profile-$size-f32" 240 "$NODE" "$BENCH" --model "$M" --seconds 0.5 --repeat 1 --profile --json
    fi
  done

  # the table for BENCHMARKS.md
  python3 - "$RES" >"$OUT/table.md" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
checks = [r for r in rows if r["tag"].startswith(("check-", "parity-", "adapter"))]
rows = [r for r in rows if r not in checks and not r["tag"].startswith(("reference-", "profile-"))]
for r in checks:  # correctness on this adapter, before the speed table
    x = r.get("result", {})
    if "tensors" in x:
        detail = ", ".join(f"{k} rel RMS {v['rel_rms']:.1e}" if "rel_rms" in v else f"{k} {v['codes_differ']} codes differ"
                           for k, v in x["tensors"].items())
    elif "cases" in x:
        detail = ", ".join(f"{k}: {v}" for k, v in x["cases"].items())
    else:
        detail = r.get("failed") or r.get("skipped") or ""
    # a packed dtype is not meant to meet f32's tolerance: its line gives the accuracy alone
    lossy = r["tag"].startswith("parity-") and not r["tag"].endswith("-f32")
    print(f"- {r['tag']}: {'accuracy' if lossy else 'ok' if x.get('ok') else 'NOT OK'} ({detail})")
print()
print("| run | load s | text s | per step ms | token loop s | EnCodec decode s | peak RSS MB | device |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    if "result" not in r:
        if not r["tag"].startswith("build"):
            print(f"| {r['tag']} | {r.get('skipped') or r.get('failed')} | | | | | | |")
        continue
    x = r["result"]
    f = lambda k, n=2: f"{x[k]:.{n}f}" if isinstance(x.get(k), (int, float)) else ""
    print(f"| {r['tag']} | {f('load_s')} | {f('text_s', 3)} | {f('per_step_ms', 1)} | {f('generate_total_s')} | "
          f"{f('encodec_decode_s', 3)} | {f('peak_rss_mb', 0)} | {x.get('device', '')} |")
EOF
  cat "$OUT/table.md"
  echo "gpu-bench done in $((SECONDS - START)) s"
  sleep 1 # let tee write the log's last lines before the device tool collects $OUT
}

case "${1:-}" in
  --pack) pack "${2:-}" ;;
  "") run_there ;;
  *) die "usage: bash tools/gpu-bench.sh [--pack [--test]]" ;;
esac
