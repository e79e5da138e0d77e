"""PyTorch's side of torch/optimref_test.go.

Reads a JSON list of requests on stdin, each: an optimiser rule and its hyperparameters,
the parameter shapes, each model's initial values and learning rate, the
loss coefficients of every step, which model is active at which step, and
the clipping (max norm, which parameters count). Trains each model alone,
as MultiBench does: zero_grad, backward of
    loss = sum_j sum(P_j * C_j + 0.5 * D_j * P_j^2),
clip_grad_norm_ over the clipped parameters, step. Writes, per model, the
final parameters, gradients and optimiser state, its step count and at how
many steps the clipping scaled (the total norm exceeded the maximum), as a
JSON list (one entry per request) on stdout.
"""
import json
import sys

import torch


def make_optimizer(spec, params, lr):
    rule, wd = spec["rule"], spec["weight_decay"]
    if rule == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(spec["beta1"], spec["beta2"]), eps=spec["eps"], weight_decay=wd)
    if rule == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if rule == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=spec["alpha"], eps=spec["eps"], weight_decay=wd)
    raise ValueError("unknown rule " + rule)


def flat(t):
    return t.detach().reshape(-1).double().tolist()


def train(req):
    shapes = req["shapes"]
    out = []
    for m, init in enumerate(req["init"]):
        ps = [torch.tensor(v, dtype=torch.float32).reshape(sh).requires_grad_(True) for v, sh in zip(init, shapes)]
        opt = make_optimizer(req["spec"], ps, req["lrs"][m])
        steps = clipped = 0
        for i, step in enumerate(req["steps"]):
            if not req["active"][i][m]:
                continue
            opt.zero_grad(set_to_none=False)
            loss = 0
            for j, p in enumerate(ps):
                c = torch.tensor(step["c"][j][m], dtype=torch.float32).reshape(shapes[j])
                d = torch.tensor(step["d"][j][m], dtype=torch.float32).reshape(shapes[j])
                loss = loss + (p * c + 0.5 * d * p * p).sum()
            loss.backward()
            if req["max_norm"] > 0:
                total = torch.nn.utils.clip_grad_norm_([p for p, c in zip(ps, req["clipped"]) if c], req["max_norm"])
                clipped += int(total.item() > req["max_norm"])
            opt.step()
            steps += 1
        state = []
        for p in ps:
            st = opt.state.get(p, {})
            state.append({k: flat(v) for k, v in st.items() if k in ("exp_avg", "exp_avg_sq", "square_avg")})
        out.append({"params": [flat(p) for p in ps], "grads": [flat(p.grad) for p in ps], "state": state, "steps": steps, "clipped_steps": clipped})
    return out


def main():
    json.dump([train(r) for r in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
