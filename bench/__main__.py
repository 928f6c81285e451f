"""`python -m bench` (`make bench`): every benchmark, each printing its side-by-side ratios."""

from __future__ import annotations

import sys

from bench import bench_fanout, bench_pace, bench_parse, bench_policies, bench_pull, bench_query, bench_scale


def main() -> int:
    for module in (bench_parse, bench_pull, bench_policies, bench_query, bench_fanout, bench_pace, bench_scale):
        print(f"\n=== {module.__name__} ===", flush=True)
        code = module.main([])
        if code:
            return int(code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
