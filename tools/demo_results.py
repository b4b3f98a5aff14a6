"""The README's demo results, made from finished runs and never typed: UA of every score set in
each run with the mean and range over the runs, and the paper's claims over the runs.

    python tools/demo_results.py RUN [RUN ...]                   # print the block
    python tools/demo_results.py RUN [RUN ...] --readme README.md   # replace it in the README

RUN: a run folder (runs/demo, or --runs DIR's DIR/demo). The block in the README lies between
BEGIN and END below; everything outside it is left as it is.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

BEGIN = "<!-- demo-results: made by tools/demo_results.py from the runs it names; do not edit by hand -->"
END = "<!-- /demo-results -->"


def results_block(run_dirs: list[pathlib.Path]) -> str:
    from merlib.claims import claims_over_runs, claims_over_runs_markdown, summarize_claims_over_runs
    from merlib.results import markdown_table, summary_over_runs

    claims = claims_over_runs(run_dirs)
    runs = claims.drop_duplicates("run")
    described = "; ".join(f"`{r.run}` seed {r.seed}, {r.precision}, {r.device}" for r in runs.itertuples())
    systems = summary_over_runs(run_dirs, labels=list(runs["run"]))
    systems = systems.drop(columns=["system"]).rename(columns={"title": "score set (UA %)"})
    over_runs = claims_over_runs_markdown(claims, summarize_claims_over_runs(claims))
    totals = over_runs.split("## Over the runs\n\n", 1)[1].strip()
    return (
        f"{BEGIN}\n"
        f"Runs: {described}. UA % (mean over the five folds) of each run, their mean and range;"
        f" synthetic speech.\n\n{markdown_table(systems)}\n\n"
        f"The paper's claims over these runs (`merlib claims {' '.join(map(str, run_dirs))}`):\n\n{totals}\n"
        f"{END}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=pathlib.Path)
    parser.add_argument("--readme", type=pathlib.Path, help="replace the block in this file")
    args = parser.parse_args(argv)
    block = results_block(args.runs)
    if args.readme is None:
        print(block)
        return 0
    text = args.readme.read_text()
    if BEGIN not in text or END not in text:
        print(
            f"{args.readme}: no block to replace; put these two lines where it goes:\n{BEGIN}\n{END}", file=sys.stderr
        )
        return 2
    head, rest = text.split(BEGIN, 1)
    args.readme.write_text(head + block + rest.split(END, 1)[1])
    print(f"{args.readme}: demo results replaced from {len(args.runs)} run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
