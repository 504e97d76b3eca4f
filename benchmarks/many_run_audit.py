"""The many-run DP audit table (Tramèr, Terzis, Steinke, Song, Jagielski, Carlini, "Debugging
Differential Privacy: A Case Study for Privacy Auditing", 2022): correct DP-SGD at eps 1, 2, 4, 8 and
the two deliberately broken variants at eps 1, each row N models (half with the canary) in its own
process, so that each row's peak memory (``getrusage`` ``ru_maxrss``) is its own. JSON on stdout, a
Markdown table on stderr. Settings: :class:`privaudit.studies.many_run.audit.ManyRunSettings`.

    nice -n 10 python benchmarks/many_run_audit.py --n-models 10000 > benchmarks/results/many_run_audit.json
    nice -n 10 python benchmarks/many_run_audit.py --n-models 100000 --correct-only \
        > benchmarks/results/many_run_audit_100k.json

The same rows through the CLI (one process): ``privaudit many-run OUT_DIR --config configs/many_run.yaml``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROWS = [(1.0, "none"), (2.0, "none"), (4.0, "none"), (8.0, "none"),
        (1.0, "noise_not_scaled"), (1.0, "clip_after_average")]


def one(epsilon: float, bug: str, n_models: int, seed: int) -> dict:
    from privaudit.studies.many_run.audit import ManyRunSettings, run_many

    return run_many(ManyRunSettings(epsilon=epsilon, bug=bug, n_models=n_models, seed=seed))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-models", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--correct-only", action="store_true", help="only the four correct DP-SGD rows")
    ap.add_argument("--one", nargs=2, metavar=("EPS", "BUG"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(float(args.one[0]), args.one[1], args.n_models, args.seed)))
        return
    rows = []
    t0 = time.perf_counter()
    for eps, bug in [r for r in ROWS if r[1] == "none" or not args.correct_only]:
        out = subprocess.run([sys.executable, __file__, "--one", str(eps), bug, "--n-models", str(args.n_models),
                              "--seed", str(args.seed)], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"eps={eps:g} {bug}: bound {r['eps_lower_bound']:.3f} / claim {r['claimed_epsilon']:.3f} "
              f"({r['seconds']:.1f} s, {r['peak_rss_mib']:.0f} MiB)", file=sys.stderr, flush=True)
    cmd = (f"python benchmarks/many_run_audit.py --n-models {args.n_models} --seed {args.seed}"
           + (" --correct-only" if args.correct_only else ""))
    print("\n| DP-SGD | claimed eps | eps lower bound (95%) | bound / claim | verdict | ideal bound at this N | ceiling | "
          "N (IN/OUT) | time (s) | peak RSS (MiB) |\n|---|---|---|---|---|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        print(f"| {'correct' if r['bug'] == 'none' else r['bug']} | {r['claimed_epsilon']:.3f} | "
              f"{r['eps_lower_bound']:.3f} | {r['ratio']:.3f} | {'REFUTED' if r['refuted'] else 'consistent'} | "
              f"{r['ideal_bound']:.3f} | {r['ceiling']:.2f} | {r['n_models']} ({r['n_in']}/{r['n_out']}) | {r['seconds']:.1f} | "
              f"{r['peak_rss_mib']:.0f} |", file=sys.stderr)
    print(json.dumps({"command": cmd, "rows": rows, "total_seconds": time.perf_counter() - t0,
                      "torch_threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
                      "cpu_count": os.cpu_count(), "python": platform.python_version()}, indent=2))


if __name__ == "__main__":
    main()
