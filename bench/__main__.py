"""`python -m bench` (`make bench`): every benchmark, each printing its side-by-side ratios."""

from __future__ import annotations

import sys

from bench import (
    bench_fanout,
    bench_pace,
    bench_parse,
    bench_per_day,
    bench_policies,
    bench_pull,
    bench_query,
    bench_scale,
)


def main() -> int:
    # bench_per_day at 2,000 subscriptions here (its 10,000 take Azurite about 25 minutes to write).
    runs = [
        (bench_parse, []),
        (bench_pull, []),
        (bench_policies, []),
        (bench_query, []),
        (bench_per_day, ["--subscriptions", "2000"]),
    ]
    runs += [(bench_fanout, []), (bench_pace, []), (bench_scale, [])]
    for module, args in runs:
        print(f"\n=== {module.__name__} ===", flush=True)
        code = module.main(args)
        if code:
            return int(code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
