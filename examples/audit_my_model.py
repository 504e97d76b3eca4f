"""Audit a model you trained yourself, from Python.

Trains a small MLP on a random half of scikit-learn's digits (your "members"), then asks privaudit
how much it leaks about them: privaudit trains a population of reference models with the same
recipe on random halves of the same data and runs membership-inference attacks on your model.

    python examples/audit_my_model.py            # 32 reference models, about a minute on 2 CPU cores
    python examples/audit_my_model.py --quick    # 8 reference models, seconds (CI)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

import privaudit


def make_net() -> torch.nn.Module:
    """The architecture: privaudit calls it to build every reference model."""
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))


def train(x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> torch.nn.Module:
    """Your training loop (any will do): Adam at a constant learning rate, batches of 32."""
    torch.manual_seed(seed)
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        for idx in torch.randperm(len(yt)).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 reference models, fewer epochs (for CI)")
    parser.add_argument("--out", default="runs", help="folder for the run directory and report.html")
    args = parser.parse_args()
    models, epochs = (8, 20) if args.quick else (32, 40)

    digits = load_digits()
    x = (digits.images[:, None] / 16.0).astype(np.float32)       # [1797, 1, 8, 8], as your model sees it
    y = digits.target.astype(np.int64)
    members = np.random.default_rng(0).random(len(y)) < 0.5       # the rows your model trains on
    net = train(x[members], y[members], epochs)

    # the reference models are trained with the recipe your model was trained with
    result = privaudit.audit(make_net, x, y, model=net, members=members, models=models, epochs=epochs,
                             batch_size=32, lr=3e-3, schedule="constant",
                             attacks=["loss", "lira_online", "rmia_online"], out=args.out, name="my_model")
    u = result.utility
    print(f"your model: {u.train.mean:.1%} accuracy on its members, {u.test.mean:.1%} on non-members")
    print(result.markdown())
    top = np.argsort(-result.scores("lira_online"))[:5]
    print(f"most exposed training rows (LiRA): {', '.join(map(str, top))}")
    print(f"report: {result.report(Path(args.out) / 'report.html')}")


if __name__ == "__main__":
    main()
