#!/usr/bin/env bash
# The one-command GPU check (issue 14), run in the repository root of a GPU machine:
#   1. builds the engine, dpo-cli and the engine tests (no Qt) against the CUDA libtorch of the
#      machine's PyTorch, with the Debian packages of .gpu/ (scripts/gpu-prepare.sh) for the rest;
#   2. runs the `cuda` CTest label (test_cuda: fixture log-probs and a 6-step trajectory on CUDA equal
#      the reference and CPU values; bf16 and fp16-with-loss-scaling track float32; the fused kernels
#      run and agree with the paths they replace), and with DPO_GPU_CPU_TESTS=1 the CPU engine tests on
#      the same build (off by default so that the whole check fits in one 10-minute device call);
#   3. benchmarks `dpo-cli bench-dpo --device cuda` on the TinyLlama-1.1B and Qwen2.5-0.5B shapes (random
#      weights, bf16, 8 pairs x 512 tokens) in three set-ups: the concatenated batch TRL runs and the
#      prompt computed once per pair (the A/B that decides the shared prompt's default on CUDA), both
#      with float32 AdamW state; the same A/B with AdamW state in bf16 as the baseline keeps it
#      (--adamw-state-dtype weights); and the least memory (concatenated, gradient checkpointing, bf16
#      state). Next to
#      tools/bench/baseline_dpo_gpu.py (PyTorch + transformers, what TRL runs per step) in the same run,
#      and writes one table: tokens/s, MFU, peak memory and the ratios, plus which optional fused
#      kernels the build found (flash varlen attention, fused AdamW) and how often flash varlen ran.
# Output: $OUT (the device tool's folder) or ./gpu-check-out: build.log, ctest-*.log, bench-*.json,
# baseline-*.txt and gpu-check.md (the table). Exit status: non-zero when the build or a test failed.
# Needs: nvidia GPU, CUDA toolkit, python3 with torch >= 2 (CUDA) and transformers, cmake, ninja, g++.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
W=${DPO_GPU_WORK:-$(mktemp -d)}
PAIRS=${DPO_GPU_PAIRS:-8}
SEQ=${DPO_GPU_SEQ:-512}
status=0

ls .gpu/*.deb > /dev/null 2>&1 || { echo "gpu-check: no .gpu/*.deb (run scripts/gpu-prepare.sh on Debian first)"; exit 2; }
for f in .gpu/*.deb; do dpkg -x "$f" "$W/deps"; done
DEPS=$W/deps/usr
TP=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || { echo "gpu-check: python3 has no torch"; exit 2; }
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' | tee "$OUT/machine.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/machine.txt" 2>&1

# 1. Build. The extracted .pc files say prefix=/usr: the sysroot points pkg-config at the copies;
# -idirafter finds header-only packages (CLI11) without shadowing the machine's own headers.
export PKG_CONFIG_SYSROOT_DIR=$W/deps
export PKG_CONFIG_PATH=$DEPS/lib/x86_64-linux-gnu/pkgconfig:$DEPS/share/pkgconfig
cap=$(python3 -c 'import torch; a,b=torch.cuda.get_device_capability(0); print(f"{a}{b}")' 2>/dev/null || echo 90)
cmake -S . -B "$W/b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDPO_WITH_QT=OFF -DDPO_CUDA_TESTS=ON \
  -DDPO_BUILD_BENCHMARKS=ON -DCMAKE_PREFIX_PATH="$TP;$DEPS" -DCMAKE_CUDA_ARCHITECTURES="$cap" \
  -DCMAKE_CXX_FLAGS="-idirafter $DEPS/include" > "$OUT/build.log" 2>&1 \
  && cmake --build "$W/b" -j "$(nproc)" >> "$OUT/build.log" 2>&1
if [ $? -ne 0 ]; then
  echo "gpu-check: build failed (last lines of $OUT/build.log):"; tail -40 "$OUT/build.log"; exit 1
fi
grep -E "DPO_HAVE_(FLASH_VARLEN|FUSED_ADAMW|SDPA_GQA)" "$OUT/build.log" | sed 's/^-- //' | tee "$OUT/kernels.txt"
export LD_LIBRARY_PATH=$DEPS/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
CLI=$W/b/bin/dpo-cli

# 2. Tests: CUDA first, then the CPU engine tests on the same CUDA build.
(cd "$W/b" && ctest -L cuda --output-on-failure) > "$OUT/ctest-cuda.log" 2>&1 || status=1
tail -5 "$OUT/ctest-cuda.log"
if [ "${DPO_GPU_CPU_TESTS:-0}" = 1 ]; then
  (cd "$W/b" && ctest -LE "cuda|slow" -j 4 --output-on-failure) > "$OUT/ctest-cpu.log" 2>&1 || status=1
  tail -3 "$OUT/ctest-cpu.log"
else
  echo "CPU engine tests: not run (DPO_GPU_CPU_TESTS=1 runs them)" > "$OUT/ctest-cpu.log"
fi

# 3. Benchmarks, ours and the baseline, same card, same run.
table="| shape | implementation | step ms | tokens/s | MFU | peak GiB |"$'\n'"|---|---|---|---|---|---|"
for shape in tinyllama qwen05; do
  cfg=tools/bench/tinyllama-1.1b.config.json; [ $shape = qwen05 ] && cfg=tools/bench/qwen2.5-0.5b.config.json
  "$CLI" init-model --config "$cfg" --tokenizer resources/demo-model --output "$W/model-$shape" --dtype bfloat16 \
    > /dev/null 2>> "$OUT/bench-$shape.err" || status=1
  bench() { # name, extra bench-dpo options
    local name=$1; shift
    "$CLI" bench-dpo --model "$W/model-$shape" --device cuda --dtype bfloat16 --batch "$PAIRS" --seq-len "$SEQ" \
      --steps 8 "$@" > "$OUT/bench-$shape-$name.json" 2>> "$OUT/bench-$shape.err" || status=1
  }
  bench f32state --share-prompt both
  bench bf16state --share-prompt both --adamw-state-dtype weights
  bench leastmem --share-prompt off --adamw-state-dtype weights --gradient-checkpointing
  python3 tools/bench/baseline_dpo_gpu.py "$PAIRS" "$SEQ" "$shape" > "$OUT/baseline-$shape.txt" 2>&1 || status=1
  row=$(python3 - "$OUT/baseline-$shape.txt" "$shape" "$OUT"/bench-$shape-*.json <<'PY'
import json, re, sys
base = open(sys.argv[1]).read()
ours = {"models": []}
for f in sys.argv[3:]:
    try:
        ours["models"] += json.loads(open(f).read().strip().splitlines()[-1])["models"]
    except (OSError, ValueError, IndexError, KeyError):
        pass
def grab(k):
    m = re.search(k + r"=([0-9.]+)", base)
    return float(m.group(1)) if m else float("nan")
b_ms, b_tok, b_mfu, b_mem = grab("step"), grab("tokens/s"), grab(r"MFU\(8N flops/token, 989TF\)"), grab("peak_mem")
s = sys.argv[2]
print(f"| {s} | baseline (HF eager) | {b_ms:.1f} | {b_tok:.0f} | {b_mfu:.1f}% | {b_mem:.2f} |")
for r in ours["models"]:
    o_ms, o_tok = r["step_ms"]["mean"], r["tokens_per_s"]
    o_mfu, o_mem = r.get("mfu_8n_989tf", float("nan")), r.get("cuda_used_peak_gib", float("nan"))
    how = ("shared prompt" if r["share_prompt"] else "concatenated") \
        + (", grad checkpointing" if r.get("gradient_checkpointing") else "") \
        + (", AdamW state bf16" if r.get("adamw_state_dtype") == "weights" else ", AdamW state f32") \
        + (", fused AdamW" if r.get("fused_adamw") else "") + f", flash varlen calls {r.get('flash_varlen_calls', 0)}"
    print(f"| {s} | dpo-cli ({how}; peak: device memory in use) | {o_ms:.1f} | {o_tok:.0f} | {o_mfu:.1f}% | {o_mem:.2f} |")
    print(f"| {s} | ratio to baseline | | {o_tok / b_tok:.2f}x | | {o_mem / b_mem:.2f}x |")
PY
) || { row="| $shape | (no figures: see bench-$shape.err, baseline-$shape.txt) | | | | |"; status=1; }
  table+=$'\n'"$row"
done
{ echo "# GPU check"; echo; cat "$OUT/machine.txt"; echo; cat "$OUT/kernels.txt"; echo; echo "$table"; echo;
  echo "Tests: $(grep 'tests passed' "$OUT/ctest-cuda.log" | tail -1) (cuda); $(grep -h 'tests passed\|not run' "$OUT/ctest-cpu.log" | tail -1) (cpu)"; } \
  > "$OUT/gpu-check.md"
cat "$OUT/gpu-check.md"
exit $status
