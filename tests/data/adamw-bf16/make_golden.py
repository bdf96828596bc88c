#!/usr/bin/python3
"""Golden values for AdamW with its state in bfloat16 (adamw_state_dtype: weights): torch.optim.AdamW
on bfloat16 parameters, what TRL runs on a model loaded in bfloat16. Run with Debian's python3-torch
(1.13): /usr/bin/python3 make_golden.py > golden.json

torch >= 2.0's _single_tensor_adamw (torch/optim/adamw.py, foreach=False) does per parameter, each op
on bf16 tensors (computed in float32 per element, rounded to bf16 per op):
    param.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (exp_avg_sq.sqrt() / sqrt(1 - beta2**t)).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**t))
torch 1.13's own AdamW has the same sequence except the first moment (exp_avg.mul_(beta1).add_(grad,
alpha=1 - beta1)). So this script first checks that sequence, with 1.13's first moment, against
torch.optim.AdamW(foreach=False) bit for bit, then writes the golden run with lerp_ as torch 2.x does.
Gradients are clipped as clip_grad_norm_ does (grad.mul_(clip_coef)); the factor 0.75 is exact in bf16.
"""
import json
import math

import torch

LR, B1, B2, EPS, WD, CLIP, STEPS = 1e-2, 0.9, 0.999, 1e-8, 0.1, 0.75, 3
NAMES = ["model.layers.0.mlp.up_proj.weight", "model.norm.weight"]  # decayed, not decayed (HF's rule)


def data():
    g = torch.Generator().manual_seed(7)
    params = [torch.randn(6, 5, generator=g).to(torch.bfloat16), (1 + 0.1 * torch.randn(5, generator=g)).to(torch.bfloat16)]
    grads = [[(torch.randn(p.shape, generator=g) * s).to(torch.bfloat16) for p, s in zip(params, (1e-2, 3e-3))]
             for _ in range(STEPS)]
    return params, grads


def literal(params, grads, lerp):
    params = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t in range(1, STEPS + 1):
        for i, p in enumerate(params):
            g = grads[t - 1][i].clone().mul_(CLIP)
            p.mul_(1 - LR * (WD if i == 0 else 0.0))
            if lerp:
                m[i].lerp_(g, 1 - B1)
            else:
                m[i].mul_(B1).add_(g, alpha=1 - B1)
            v[i].mul_(B2).addcmul_(g, g, value=1 - B2)
            denom = (v[i].sqrt() / math.sqrt(1 - B2 ** t)).add_(EPS)
            p.addcdiv_(m[i], denom, value=-LR / (1 - B1 ** t))
    return params, m, v


def torch_adamw(params, grads):
    ps = [p.clone().requires_grad_(True) for p in params]
    opt = torch.optim.AdamW([{"params": [ps[0]], "weight_decay": WD}, {"params": [ps[1]], "weight_decay": 0.0}],
                            lr=LR, betas=(B1, B2), eps=EPS, foreach=False)
    for t in range(STEPS):
        for p, g in zip(ps, grads[t]):
            p.grad = g.clone()
            p.grad.mul_(CLIP)
        opt.step()
    return [p.detach() for p in ps], [opt.state[p]["exp_avg"] for p in ps], [opt.state[p]["exp_avg_sq"] for p in ps]


params, grads = data()
mine, ref = literal(params, grads, lerp=False), torch_adamw(params, grads)
for a, b in zip(mine, ref):
    for x, y in zip(a, b):
        assert x.dtype == torch.bfloat16 and torch.equal(x, y), "the literal sequence is not torch's AdamW"
final, m, v = literal(params, grads, lerp=True)
vals = lambda t: [float(x) for x in t.float().flatten()]
print(json.dumps({
    "lr": LR, "beta1": B1, "beta2": B2, "eps": EPS, "weight_decay": WD, "clip": CLIP, "steps": STEPS,
    "names": NAMES,
    "shapes": [list(p.shape) for p in params],
    "params": [vals(p) for p in params],
    "grads": [[vals(g) for g in step] for step in grads],
    "final": [vals(p) for p in final], "exp_avg": [vals(x) for x in m], "exp_avg_sq": [vals(x) for x in v],
    "torch": torch.__version__,
}))
