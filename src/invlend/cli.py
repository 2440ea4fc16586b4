"""Command line: ``invlend compare``, ``invlend validate`` and ``invlend scenario show|check``.

Every error in the input (a malformed or invalid TOML file, a bad option) is reported as one
line on standard error with exit code 2, and nothing is written.

Example
-------
.. code-block:: console

    $ invlend compare --portfolios 2000 --size 100 --seed 1 --out report
    $ invlend scenario show > my.toml && invlend compare my.toml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and one line, as for every other input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"invlend: error: {message}\n")
        raise SystemExit(2)


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return f"invalid {exc.title}: " + "; ".join(parts)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="invlend",
        description="Monte Carlo simulation of investment-lending linkage (投贷联动).",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser(
        "compare",
        help="simulate a scenario and compare financing structures",
        description="Simulate a scenario, evaluate the structures on the same firms and print "
        "the summary and the paired comparison against a baseline.",
    )
    c.add_argument("scenario", nargs="?", help="scenario TOML file (default: built-in)")
    c.add_argument("--structures", help="TOML file of [[structure]] tables (default: presets)")
    c.add_argument("--portfolios", type=int, default=2000, help="number of portfolios")
    c.add_argument("--size", type=int, default=100, help="applicant firms per portfolio")
    c.add_argument("--seed", type=int, default=20260501, help="root seed (default: 20260501)")
    c.add_argument("--backend", default="cpu", help="cpu or numpy (default: cpu)")
    c.add_argument("--baseline", default=None, help="structure to compare against (default: first)")
    c.add_argument("--bootstrap", type=int, default=400, help="bootstrap replicates for tails")
    c.add_argument("--out", help="folder for summary.csv, summary.json and comparison.csv")
    c.add_argument("--progress", action="store_true", help="show a progress bar")
    v = sub.add_parser(
        "validate",
        help="check the engine against closed forms",
        description="Run the closed-form validation cases (docs/validation.md) and print the "
        "table; exit with code 1 if any check fails.",
    )
    v.add_argument("--quick", action="store_true", help="about 10x fewer firms (seconds)")
    v.add_argument("--seed", type=int, default=None, help="root seed (default: 20261128)")
    v.add_argument("--markdown", action="store_true", help="print a markdown table")
    s = sub.add_parser("scenario", help="show or check scenario files")
    ssub = s.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ssub.add_parser("show", help="print the built-in scenario as commented TOML")
    chk = ssub.add_parser("check", help="validate a scenario TOML file")
    chk.add_argument("file")
    return p


def _compare(args: argparse.Namespace) -> int:
    import invlend as il

    scenario = il.Scenario.from_toml(args.scenario) if args.scenario else il.Scenario.default()
    structures = (
        il.Structure.from_toml(args.structures) if args.structures else il.default_structures()
    )
    baseline = args.baseline or structures[0].name
    if baseline not in [s.name for s in structures]:
        raise ValueError(
            f"--baseline: no structure named {baseline!r}; have {[s.name for s in structures]}"
        )
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap: must be >= 0, got {args.bootstrap}")
    if args.seed < 0:
        raise ValueError(f"--seed: must be a non-negative integer, got {args.seed}")
    out = Path(args.out) if args.out else None
    if out is not None:
        for folder in (out, *out.parents):  # the nearest existing folder must be a folder
            if folder.exists():
                if not folder.is_dir():
                    raise ValueError(f"--out: {folder} exists and is not a folder")
                break
    res = il.simulate(
        scenario,
        structures,
        n_portfolios=args.portfolios,
        portfolio_size=args.size,
        seed=args.seed,
        backend=args.backend,
        progress=args.progress,
    )
    summary = res.summary(n_boot=args.bootstrap)
    print(summary)
    comparison = None
    if len(structures) > 1:
        comparison = res.compare(baseline=baseline, n_boot=args.bootstrap)
        print()
        print(comparison)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary.to_csv(out / "summary.csv")
        meta = summary.to_dict()
        meta["meta"] = res.meta | {"n_boot": args.bootstrap}
        import json

        (out / "summary.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        if comparison is not None:
            comparison.to_csv(out / "comparison.csv")
        print(
            f"\nwrote {out}/summary.csv, summary.json" + (", comparison.csv" if comparison else "")
        )
    return 0


def _scenario(args: argparse.Namespace) -> int:
    import invlend as il
    from invlend.scenarios import default_scenario_toml

    if args.action == "show":
        sys.stdout.write(default_scenario_toml())
        return 0
    sc = il.Scenario.from_toml(args.file)
    print(
        f"{args.file}: valid scenario, {len(sc.stages)} stages "
        f"({', '.join(s.name for s in sc.stages)}), {sc.n_steps} steps"
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    from invlend import validation

    seed = validation.DEFAULT_SEED if args.seed is None else args.seed
    if seed < 0:
        raise ValueError(f"--seed: must be a non-negative integer, got {seed}")
    report = validation.run(quick=args.quick, seed=seed)
    print(report.to_markdown() if args.markdown else report)
    return 0 if report.passed else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``invlend`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "compare":
            return _compare(args)
        if args.command == "validate":
            return _validate(args)
        return _scenario(args)
    except ValidationError as exc:
        sys.stderr.write(f"invlend: error: {_one_line(exc)}\n")
    except (ValueError, TypeError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        sys.stderr.write(f"invlend: error: {msg}\n")
    except OSError as exc:
        sys.stderr.write(f"invlend: error: {exc.filename or ''}: {exc.strerror or exc}\n")
    except KeyboardInterrupt:
        sys.stderr.write("invlend: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader (e.g. `head`) closed the pipe: stop quietly, as other tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
