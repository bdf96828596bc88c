#!/usr/bin/python3
"""Golden RoPE inverse frequencies for tests/engine/test_rope.cpp, computed independently of the engine:
float64 numpy straight from the published formulas (RoPE, position interpolation, Llama 3.1, YaRN,
LongRoPE), as transformers' modeling_rope_utils.py documents them. Run: /usr/bin/python3 make_golden.py
(writes golden.json next to this file)."""
import json
import math
import os

import numpy as np


def base_inv(theta, dim):
    return 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)


def default(theta, dim):
    return base_inv(theta, dim), 1.0


def linear(theta, dim, factor):
    return base_inv(theta, dim) / factor, 1.0


def llama3(theta, dim, factor, low, high, orig):
    inv = base_inv(theta, dim)
    out = []
    for f in inv:
        wavelen = 2 * math.pi / f
        if wavelen < orig / high:
            out.append(f)
        elif wavelen > orig / low:
            out.append(f / factor)
        else:
            s = (orig / wavelen - low) / (high - low)
            out.append((1 - s) * f / factor + s * f)
    return np.array(out), 1.0


def yarn(theta, dim, factor, orig, beta_fast=32, beta_slow=1, truncate=True, attention=None, mscale=None,
         mscale_all_dim=None):
    def corr(rot):
        return dim * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(theta))

    lo, hi = corr(beta_fast), corr(beta_slow)
    if truncate:
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, dim - 1)
    if lo == hi:
        hi += 0.001
    inv = base_inv(theta, dim)
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
    keep = 1 - ramp  # share of the original (extrapolated) frequency
    out = inv / factor * (1 - keep) + inv * keep

    def m(scale, ms):
        return 1.0 if scale <= 1 else 0.1 * ms * math.log(scale) + 1.0

    if attention is None:
        attention = m(factor, mscale) / m(factor, mscale_all_dim) if (mscale and mscale_all_dim) else m(factor, 1)
    return out, attention


def longrope(theta, dim, short, long, orig, max_pos, seq_len):
    ext = np.array(long if seq_len > orig else short, dtype=np.float64)
    factor = max_pos / orig
    attention = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(orig))
    return 1.0 / (ext * theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)), attention


cases = []


def add(name, config, head_dim, result, layer_type="full_attention", seq_len=0):
    inv, att = result
    cases.append({"name": name, "config": config, "layer_type": layer_type, "head_dim": head_dim,
                  "seq_len": seq_len, "inv_freq": [float(x) for x in inv], "attention_scaling": float(att)})


add("default, top-level rope_theta", {"max_position_embeddings": 2048, "rope_theta": 10000.0}, 64,
    default(10000.0, 64))
add("default, no rope fields", {"max_position_embeddings": 2048}, 32, default(10000.0, 32))
add("default, rope_parameters with partial_rotary_factor (Phi-3 fixture)",
    {"max_position_embeddings": 1024,
     "rope_parameters": {"rope_type": "default", "rope_theta": 25000.0, "partial_rotary_factor": 0.5}}, 16,
    default(25000.0, 8))
add("default, top-level partial_rotary_factor 0.75 (Phi-4-mini)",
    {"max_position_embeddings": 4096, "rope_theta": 10000.0, "partial_rotary_factor": 0.75}, 128,
    default(10000.0, 96))
add("linear, rope_scaling type (Gemma 3 fixture)",
    {"max_position_embeddings": 2048, "rope_theta": 200000.0, "rope_scaling": {"type": "linear", "factor": 4.0}},
    20, linear(200000.0, 20, 4.0))
add("llama3, rope_parameters (llama3-rope fixture)",
    {"max_position_embeddings": 256,
     "rope_parameters": {"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 2.0, "high_freq_factor": 6.0,
                         "original_max_position_embeddings": 48, "rope_theta": 50000.0}}, 24,
    llama3(50000.0, 24, 16.0, 2.0, 6.0, 48))
add("llama3, rope_scaling (Llama 3.1 8B)",
    {"max_position_embeddings": 131072, "rope_theta": 500000.0,
     "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192}}, 128,
    llama3(500000.0, 128, 8.0, 1.0, 4.0, 8192))
add("yarn, rope_scaling (Qwen3 fixture)",
    {"max_position_embeddings": 64, "rope_theta": 20000.0,
     "rope_scaling": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 32}}, 16,
    yarn(20000.0, 16, 2.0, 32))
add("yarn, betas, no truncation, explicit attention_factor",
    {"max_position_embeddings": 32768,
     "rope_parameters": {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                         "original_max_position_embeddings": 8192, "beta_fast": 16, "beta_slow": 2,
                         "truncate": False, "attention_factor": 1.25}}, 64,
    yarn(1000000.0, 64, 4.0, 8192, 16, 2, False, attention=1.25))
add("yarn, mscale and mscale_all_dim, original from max_position_embeddings",
    {"max_position_embeddings": 4096,
     "rope_scaling": {"type": "yarn", "factor": 40.0, "mscale": 1.0, "mscale_all_dim": 0.707}}, 64,
    yarn(10000.0, 64, 40.0, 4096, mscale=1.0, mscale_all_dim=0.707))
short = [1.0, 1.1, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0]
long = [1.0, 1.3, 1.9, 2.7, 4.1, 6.2, 9.5, 14.0]
longrope_cfg = {"max_position_embeddings": 128, "original_max_position_embeddings": 32, "rope_theta": 10000.0,
                "rope_scaling": {"type": "longrope", "short_factor": short, "long_factor": long}}
add("longrope, short factors within the original context", longrope_cfg, 16,
    longrope(10000.0, 16, short, long, 32, 128, 20), seq_len=20)
add("longrope, long factors past the original context", longrope_cfg, 16,
    longrope(10000.0, 16, short, long, 32, 128, 40), seq_len=40)
nested = {"max_position_embeddings": 2048,
          "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                              "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}
add("nested per layer type (Gemma 3, transformers 5): full", nested, 32, linear(1000000.0, 32, 8.0))
add("nested per layer type (Gemma 3, transformers 5): sliding", nested, 32, default(10000.0, 32),
    layer_type="sliding_attention")

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json"), "w") as f:
    json.dump({"generator": "make_golden.py (float64 numpy)", "cases": cases}, f, indent=1)
    f.write("\n")
print(len(cases), "cases")
