"""PyTorch's side of torch/opsref_test.go.

Reads a JSON list of cases on stdin. Each names its inputs (flat float64
values, a shape, whether autograd tracks it) and Python code that sets
`out`, a list of tensors, from the list `x` of input tensors. For each case
it writes the outputs and the gradients of sum_i sum(out[i] * w[i]) (over
the outputs that require grad) with respect to each tracked input, as JSON
on stdout, keyed by case name.
"""
import json
import sys

import torch
import torch.nn.functional as F


def run(case):
    x = []
    for inp in case["inputs"]:
        t = torch.tensor(inp["data"], dtype=torch.float64).reshape(inp["shape"])
        if inp["grad"]:
            t.requires_grad_(True)
        x.append(t)
    env = {"torch": torch, "F": F, "x": x}
    exec(case["code"], env)
    ys = env["out"]
    terms = [(y * torch.tensor(w, dtype=y.dtype).reshape(y.shape)).sum() for y, w in zip(ys, case["w"]) if y.requires_grad]
    tracked = [t for t in x if t.requires_grad]
    grads = torch.autograd.grad(sum(terms), tracked) if terms and tracked else []
    it = iter(grads)
    return {
        "outputs": [y.detach().reshape(-1).tolist() for y in ys],
        "grads": [next(it).reshape(-1).tolist() if t.requires_grad else None for t in x],
    }


def main():
    torch.use_deterministic_algorithms(True)
    cases = json.load(sys.stdin)
    json.dump({c["name"]: run(c) for c in cases}, sys.stdout)


if __name__ == "__main__":
    main()
