#!/usr/bin/env bash
# Rebuilds DPO Studio's bundled demo model from scratch, deterministically (fixed seeds):
#   1. tools/demo_corpus.py   synthetic instruction corpus (mixed: right and off-by-one sums, polite
#                             and curt greetings), the DPO teaching pairs and the held-out eval prompts
#   2. spm_train              sentencepiece BPE tokenizer (1000 pieces, byte fallback, unk 0 bos 1 eos 2)
#   3. dpo-cli init-model     a tiny randomly initialised Llama (hidden 192, 4 layers, 4 heads, 2 KV heads)
#   4. dpo-cli sft            supervised fine-tuning on the corpus -> resources/demo-model/
#   5. dpo-cli demo-eval      share of held-out prompts with the preferred answer, before and after a
#                             short DPO run with resources/demo/dpo_preset.json (skip with --no-measure)
# Usage: scripts/make_demo_model.sh [--cli PATH/dpo-cli] [--work DIR] [--threads N] [--no-measure]
# --threads defaults to 1: the model is so small that one thread is nearly as fast as several, results
# depend on the thread count, and on a busy machine libtorch's OpenMP threads can be 10x slower.
# The results are bit-identical from run to run on the same machine and libtorch build; other CPUs or
# BLAS builds may round differently during SFT (the recipe is the same, the weights may differ).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLI="${DPO_CLI:-}"
WORK=""
THREADS=1
MEASURE=1
SEED=1234
while [ $# -gt 0 ]; do
  case "$1" in
    --cli) CLI="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --no-measure) MEASURE=0; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "make_demo_model.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$CLI" ]; then
  for c in "$ROOT"/build/bin/dpo-cli "$ROOT"/build-*/bin/dpo-cli; do
    [ -x "$c" ] && { CLI="$c"; break; }
  done
fi
[ -x "$CLI" ] || { echo "make_demo_model.sh: dpo-cli not found (build it, or pass --cli PATH)" >&2; exit 1; }
command -v spm_train >/dev/null || { echo "make_demo_model.sh: spm_train missing (apt install sentencepiece)" >&2; exit 1; }
[ -n "$WORK" ] || WORK="$(mktemp -d -t dpo-demo-model.XXXXXX)"
mkdir -p "$WORK"
echo "work dir: $WORK, dpo-cli: $CLI" >&2

# 1. Data
python3 "$ROOT/tools/demo_corpus.py" --out-dir "$WORK/data" --seed "$SEED" --rows 4000 \
  --extra-jsonl "$ROOT/resources/demo/pairs.jsonl"

# 2. Tokenizer (BPE like Llama's; single-threaded and unshuffled so that it is deterministic)
mkdir -p "$WORK/tokenizer"
# Relative paths: spm_train records them in the model's trainer_spec, so they must not vary.
(cd "$WORK" && spm_train --input=data/spm_text.txt --model_prefix=tokenizer/tokenizer \
  --model_type=bpe --vocab_size=1000 --byte_fallback=true --character_coverage=0.9995 \
  --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --hard_vocab_limit=false \
  --num_threads=1 --input_sentence_size=0 --shuffle_input_sentence=false --minloglevel=1)
rm -f "$WORK/tokenizer/tokenizer.vocab"
cat > "$WORK/tokenizer/tokenizer_config.json" <<'JSON'
{
 "add_bos_token": true,
 "add_eos_token": false,
 "bos_token": "<s>",
 "eos_token": "</s>",
 "unk_token": "<unk>",
 "model_max_length": 256,
 "tokenizer_class": "LlamaTokenizer"
}
JSON

# 3. Untrained model
cat > "$WORK/config.json" <<'JSON'
{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "dtype": "float32",
  "head_dim": 48,
  "hidden_act": "silu",
  "hidden_size": 192,
  "initializer_range": 0.02,
  "intermediate_size": 512,
  "max_position_embeddings": 256,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 4,
  "num_hidden_layers": 4,
  "num_key_value_heads": 2,
  "pad_token_id": null,
  "rms_norm_eps": 1e-06,
  "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
  "tie_word_embeddings": true,
  "use_cache": true,
  "vocab_size": 1000
}
JSON
rm -rf "$WORK/init"
"$CLI" --threads "$THREADS" init-model --config "$WORK/config.json" --tokenizer "$WORK/tokenizer" \
  --output "$WORK/init" --seed "$SEED"

# 4. SFT
rm -rf "$WORK/sft"
start=$(date +%s)
"$CLI" --threads "$THREADS" sft --model "$WORK/init" --dataset "$WORK/data/sft.jsonl" --output-dir "$WORK/sft" \
  --learning-rate 3e-3 --lr-scheduler cosine --warmup-ratio 0.05 --batch-size 32 --epochs 8 \
  --max-length 64 --weight-decay 0.0 --max-grad-norm 1.0 --seed "$SEED" --save-steps 0 \
  --device cpu --threads "$THREADS"
echo "SFT wall time: $(( $(date +%s) - start )) s" >&2
OUT="$ROOT/resources/demo-model"
mkdir -p "$OUT"
for f in config.json generation_config.json model.safetensors tokenizer.model tokenizer_config.json; do
  cp "$WORK/sft/final/$f" "$OUT/$f"
done
cp "$WORK/data/dpo_pairs.jsonl" "$ROOT/resources/demo/dpo_pairs.jsonl"
cp "$WORK/data/demo_eval.jsonl" "$ROOT/resources/demo/demo_eval.jsonl"
du -b "$OUT"/* >&2

# 5. Before / after a short DPO run with the GUI's default settings
[ "$MEASURE" -eq 1 ] || exit 0
EVAL="$ROOT/resources/demo/demo_eval.jsonl"
echo "before DPO:" >&2
"$CLI" --threads "$THREADS" demo-eval --model "$OUT" --prompts "$EVAL" --device cpu
rm -rf "$WORK/dpo"
start=$(date +%s)
"$CLI" --threads "$THREADS" train --config "$ROOT/resources/demo/dpo_preset.json" --model "$OUT" \
  --dataset "$ROOT/resources/demo/dpo_pairs.jsonl" --output-dir "$WORK/dpo" --device cpu --threads "$THREADS"
echo "DPO wall time: $(( $(date +%s) - start )) s" >&2
echo "after DPO:" >&2
"$CLI" --threads "$THREADS" demo-eval --model "$WORK/dpo/final" --prompts "$EVAL" --device cpu
