# Copied from the shared GPU kit (../shared/gpu/baseline_dpo.py) so that scripts/gpu-check.sh runs it from the checkout.
# The bar to beat: one DPO step in plain PyTorch + transformers (what TRL runs per step), on a random
# model of a real shape in bf16. Usage on the GPU machine: python3 baseline_dpo.py PAIRS SEQ_LEN [tinyllama|qwen05]
# (tinyllama: TinyLlama-1.1B shape, 32k vocab; qwen05: Qwen2.5-0.5B shape, 152k vocab, tied head).
# Prints step time, tokens/s, MFU (8N FLOPs per token against 989 TFLOP/s) and peak memory.
import time, torch, torch.nn.functional as F, sys
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
B, T = int(sys.argv[1]), int(sys.argv[2])
shape = sys.argv[3] if len(sys.argv) > 3 else "tinyllama"
if shape == "qwen05":
    cfg = LlamaConfig(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                      num_key_value_heads=2, max_position_embeddings=4096, rope_theta=1e6, tie_word_embeddings=True, attn_implementation="sdpa")
else:
    cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                  num_key_value_heads=4, max_position_embeddings=2048, rope_theta=10000.0, attn_implementation="sdpa")
pol = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16); ref = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16).eval()
N = sum(p.numel() for p in pol.parameters())
opt = torch.optim.AdamW(pol.parameters(), lr=1e-6, fused=True)
ids = torch.randint(0, cfg.vocab_size, (2 * B, T), device="cuda"); mask = torch.ones_like(ids); mask[:, : T // 4] = 0  # prompt quarter
def logps(m, ids):
    lg = m(input_ids=ids).logits[:, :-1].float()
    lp = torch.log_softmax(lg, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (lp * mask[:, 1:]).sum(-1)
def step():
    with torch.no_grad(): r = logps(ref, ids)
    p = logps(pol, ids)
    lg = (p[:B] - p[B:]) - (r[:B] - r[B:])
    loss = -F.logsigmoid(0.1 * lg).mean()
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return loss
for _ in range(3): step()
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); t0 = time.time(); n = 8
for _ in range(n): step()
torch.cuda.synchronize(); dt = (time.time() - t0) / n
tok = 2 * B * T
print(f"baseline HF-eager DPO step [{shape}]: params={N/1e9:.3f}B pairs={B} T={T} step={dt*1000:.1f}ms tokens/s={tok/dt:.0f} "
      f"MFU(8N flops/token, 989TF)={8*N*tok/dt/989e12*100:.1f}% peak_mem={torch.cuda.max_memory_allocated()/2**30:.1f}GiB", flush=True)
