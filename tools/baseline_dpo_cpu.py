#!/usr/bin/env python3
"""The bar to beat on a CPU: one DPO step in plain eager PyTorch, the way TRL's DPOTrainer runs it per
step with a transformers Llama (eager attention, the lm_head and log-softmax over every position, a live
reference model, torch.optim.AdamW), on the same random ~25.6M-parameter shape as `dpo-cli bench-dpo
--model 25m`. transformers is not a Debian package, so the model is written out here following
transformers' LlamaForCausalLM (RMSNorm, RoPE, GQA via repeat_kv, SwiGLU, float32 softmax).
Mirrors ../shared/gpu/baseline_dpo.py (the GPU bar) on CPU.

Usage: /usr/bin/python3 tools/baseline_dpo_cpu.py [PAIRS=8] [SEQ_LEN=256] [THREADS=0 (all cores)] [STEPS=3]
Needs Debian's python3-torch (`apt-get install python3-torch`: 1.13, the same libtorch and BLAS as the C++
build; not installed by scripts/deps.sh, as only this benchmark uses it). Compare with, in the same run:
    build/bin/dpo-cli --threads N bench-dpo --model 25m --batch PAIRS --seq-len SEQ_LEN
Prints one JSON line: step time, tokens/s and steps/s.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

B = int(sys.argv[1]) if len(sys.argv) > 1 else 8
T = int(sys.argv[2]) if len(sys.argv) > 2 else 256
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 0
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
if threads > 0:
    torch.set_num_threads(threads)
torch.manual_seed(0)

V, H, I, L, NH, NKV = 8000, 512, 1376, 6, 8, 4
HD = H // NH


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(v + self.eps)).to(x.dtype)


def rope(T, dim, theta=10000.0):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
    f = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat((f, f), -1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    a, b = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-b, a), -1)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(H), RMSNorm(H)
        self.q_proj = nn.Linear(H, NH * HD, bias=False)
        self.k_proj = nn.Linear(H, NKV * HD, bias=False)
        self.v_proj = nn.Linear(H, NKV * HD, bias=False)
        self.o_proj = nn.Linear(NH * HD, H, bias=False)
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)

    def forward(self, x, cos, sin, causal):
        n, t, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(n, t, NH, HD).transpose(1, 2)  # [n, NH, t, HD]
        k = self.k_proj(h).view(n, t, NKV, HD).transpose(1, 2)
        v = self.v_proj(h).view(n, t, NKV, HD).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(NH // NKV, dim=1)  # repeat_kv
        v = v.repeat_interleave(NH // NKV, dim=1)
        w = q @ k.transpose(2, 3) / math.sqrt(HD) + causal  # [n, NH, t, t]
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        a = (w @ v).transpose(1, 2).reshape(n, t, NH * HD)
        x = x + self.o_proj(a)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(V, H)
        self.layers = nn.ModuleList([Layer() for _ in range(L)])
        self.norm = RMSNorm(H)
        self.lm_head = nn.Linear(H, V, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids):
        t = ids.shape[1]
        cos, sin = rope(t, HD)
        causal = torch.full((t, t), float("-inf")).triu(1)
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, causal)
        return self.lm_head(self.norm(x))  # logits at every position, as transformers returns them


pol = Llama()
ref = Llama().eval()
ref.load_state_dict(pol.state_dict())
for p in ref.parameters():
    p.requires_grad_(False)
params = sum(p.numel() for p in pol.parameters())
opt = torch.optim.AdamW(pol.parameters(), lr=1e-6)
ids = torch.randint(0, V, (2 * B, T))
mask = torch.ones_like(ids)
mask[:, : T // 4] = 0  # prompt quarter


def logps(m):
    lg = m(ids)[:, :-1].float()
    lp = torch.log_softmax(lg, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (lp * mask[:, 1:]).sum(-1)


def step():
    with torch.no_grad():
        r = logps(ref)
    p = logps(pol)
    lg = (p[:B] - p[B:]) - (r[:B] - r[B:])
    loss = -F.logsigmoid(0.1 * lg).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(pol.parameters(), 1.0)  # TRL's default max_grad_norm
    opt.step()
    return loss


step()  # warm-up
times = []
for _ in range(steps):
    t0 = time.time()
    step()
    times.append(time.time() - t0)
dt = sum(times) / len(times)
print(json.dumps({"baseline": "eager PyTorch (transformers-style Llama), live reference, AdamW",
                  "torch": torch.__version__, "threads": torch.get_num_threads(), "params": params,
                  "batch_pairs": B, "seq_len": T, "step_ms": dt * 1e3, "steps_per_s": 1 / dt,
                  "tokens_per_s": 2 * B * T / dt}), flush=True)
