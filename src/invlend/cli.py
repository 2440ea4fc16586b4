"""Command line: ``invlend compare|sweep|breakeven|validate|scenario``.

Every error in the input (a malformed or invalid TOML file, a bad option) is reported as one
line on standard error with exit code 2, and nothing is written; :func:`main` lists the exit
statuses.

Example
-------
.. code-block:: console

    $ invlend compare --portfolios 2000 --size 100 --seed 1 --out report
    $ invlend scenario show > my.toml && invlend compare my.toml
    $ invlend scenario list
    $ invlend scenario show --preset semiconductors > chips.toml && invlend compare chips.toml
    $ invlend sweep warrant.coverage 0.05,0.1,0.2 --out sweep-coverage
    $ invlend breakeven loan.rate 0 0.3 --structure pure_loan --against warrant_loan
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import math
import os
import re
import sys
from pathlib import Path

from pydantic import ValidationError

from invlend import _checks
from invlend.capital import DEFAULT_HURDLE
from invlend.sweep import MAX_POINTS, MAX_VALUES

__all__ = ["main"]

#: Run size of ``compare``, ``sweep`` and ``breakeven`` (each point of a sweep and each
#: evaluation of a break-even is one run of this size).
DEFAULT_PORTFOLIOS = 2000
DEFAULT_SIZE = 100
DEFAULT_SEED = 20260501
#: validation.DEFAULT_SEED, written out so that the parser does not import the validation.
_VALIDATE_SEED_HELP = "root seed (default: 20261128)"
#: Bootstrap replicates for the tail metrics of ``compare`` and ``sweep``.
DEFAULT_BOOTSTRAP = 400

#: The name of each argument of the library that a flag of the command line sets: an error
#: of the library ("n_portfolios: must be >= 1") is printed with the flag ("--portfolios: ...").
FLAGS = {
    "n_portfolios": "--portfolios",
    "portfolio_size": "--size",
    "seed": "--seed",
    "backend": "--backend",
    "keep": "--keep",
    "measures": "--measures",
    "n_boot": "--bootstrap",
    "hurdle": "--hurdle",
    "discount_rate": "--discount-rate",
    "market.discount_rate": "--discount-rate",
    "metric": "--metric",
    "baseline": "--baseline",
    "target": "--target",
    "against": "--against",
    "structure": "--structure",
    "tail": "--tail",
    "tolerance": "--tolerance",
    "max_portfolios": "--max-portfolios",
    "bracket": "bracket LO HI",
}
#: Names replaced wherever they stand in a message, not only before its first colon: none of
#: them can be a stage, a structure or a field of a scenario file.
_ANYWHERE = ("n_portfolios", "portfolio_size", "n_boot")
_KEEP_VALUE = re.compile(r"(?:simulate\(\.\.\., )?\bkeep='(\w+)'\)?")
_MEASURES_VALUE = re.compile(r"\bmeasures=\(?\[?'real_world',?\]?\)?")
_ANYWHERE_RE = re.compile(r"\b(" + "|".join(_ANYWHERE) + r")\b")


def flag_message(message: str) -> str:
    """``message`` of the library with the names of its arguments replaced by the flags.

    The name before the first colon ("n_portfolios: ...") is mapped by :data:`FLAGS`; inside
    the message, only names that nothing else can be called (``n_portfolios``) and
    ``keep='aggregates'`` (``--keep aggregates``) and ``measures=('real_world',)``
    (``--measures real_world``) are.
    """
    head, sep, rest = message.partition(": ")
    if sep and head in FLAGS:
        message = f"{FLAGS[head]}: {rest}"
    message = _KEEP_VALUE.sub(lambda m: f"--keep {m.group(1)}", message)
    message = _MEASURES_VALUE.sub("--measures real_world", message)
    return _ANYWHERE_RE.sub(lambda m: FLAGS[m.group(1)], message)


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and one line, as for every other input error."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"invlend: error: {message}\n")
        raise SystemExit(2)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every default in ``--help``, except where there is none or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


def _positive_int(text: str) -> int:
    return _int(text, low=1)


def _nonnegative_int(text: str) -> int:
    return _int(text, low=0)


def _int(text: str, low: int) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
    if n < low:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {n}")
    return n


def _finite(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return x


def _hurdle(text: str) -> float:
    x = _finite(text)
    if not -1.0 <= x <= 10.0:  # the range of summary(hurdle=...)
        raise argparse.ArgumentTypeError(f"must be between -1 and 10 (a year), got {x:g}")
    return x


def _discount_rate(text: str) -> float:
    from invlend.config import Market

    x = _finite(text)
    try:
        Market(discount_rate=x)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise argparse.ArgumentTypeError(f"{msg}, got {x:g}") from None
    return x


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return f"invalid {exc.title}: " + "; ".join(parts)


def _run_options(p: argparse.ArgumentParser, bootstrap: bool = True) -> None:
    p.add_argument("--structures", help="TOML file of [[structure]] tables (default: presets)")
    p.add_argument(
        "--portfolios", type=_positive_int, default=DEFAULT_PORTFOLIOS, help="number of portfolios"
    )
    p.add_argument(
        "--size", type=_positive_int, default=DEFAULT_SIZE, help="applicant firms per portfolio"
    )
    p.add_argument("--seed", type=_nonnegative_int, default=DEFAULT_SEED, help="root seed")
    p.add_argument("--backend", default="cpu", help="cpu, numpy, cuda or auto")
    p.add_argument(
        "--keep",
        choices=("firms", "aggregates"),
        default="firms",
        help="firms: every per-firm array; aggregates: only per-portfolio totals (memory grows "
        "with portfolios, not firms; a report then has no per-firm figures)",
    )
    p.add_argument(
        "--measures",
        choices=("both", "real_world"),
        default=None,
        help="both: real world and risk-neutral (fair values); real_world: about half the work, "
        "fair values NaN (default: both, real_world for a scenario with default_barrier > 0)",
    )
    p.add_argument(
        "--discount-rate",
        type=_discount_rate,
        default=None,
        metavar="RATE",
        help="annual discount rate of the bank, continuously compounded; overrides the "
        "scenario's market.discount_rate (default: the scenario's, 0.02 built in)",
    )
    if bootstrap:
        p.add_argument(
            "--bootstrap",
            type=_nonnegative_int,
            default=DEFAULT_BOOTSTRAP,
            help="bootstrap replicates for tails",
        )


#: ``(help, description)`` of each command, in the order ``invlend --help`` lists them.
_HELP = {
    "compare": (
        "simulate a scenario and compare financing structures",
        "Simulate a scenario, evaluate the structures on the same firms and print the summary "
        "and the paired comparison against a baseline.",
    ),
    "validate": (
        "check the engine against closed forms",
        "Run the closed-form validation cases (docs/validation.md) and print the table; exit "
        "with code 1 if any check fails.",
    ),
    "sweep": (
        "vary a parameter on common random numbers",
        "Vary one parameter (or two, with --grid) by its dotted path, e.g. loan.rate, "
        "warrant.coverage, stages.seed.default_hazard, market.factor_loading, "
        "warrant_loan.warrant.coverage; print a metric for every structure at every value.",
    ),
    "breakeven": (
        "solve for the term at which a metric reaches a target",
        "Find the value of PARAM in [LO, HI] at which a structure's metric equals --target, "
        "or equals the metric of the --against structure on the same firms.",
    ),
    "scenario": ("show, list or check scenarios (the built-in one and the presets)", None),
}


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="invlend",
        description="Monte Carlo simulation of investment-lending linkage (投贷联动).",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c, v, w, b, s = (
        sub.add_parser(name, help=short, description=long) for name, (short, long) in _HELP.items()
    )
    c.add_argument("scenario", nargs="?", help="scenario TOML file (default: built-in)")
    _run_options(c)
    c.add_argument("--baseline", default=None, help="structure to compare against (default: first)")
    c.add_argument(
        "--hurdle",
        type=_hurdle,
        default=DEFAULT_HURDLE,
        metavar="RATE",
        help="annual hurdle rate (cost of equity) of EVA",
    )
    c.add_argument(
        "--out",
        help="folder for the report: summary.csv, summary.json, comparison.csv, "
        "decomposition.csv, figures as PNG and report.html; refused if it holds a report or "
        "a sweep (see --force)",
    )
    c.add_argument(
        "--force", action="store_true", help="let --out replace the report already in the folder"
    )
    c.add_argument(
        "--progress", action="store_true", help="show progress bars (simulation, bootstrap)"
    )
    c.add_argument(
        "--tail",
        choices=("off", "auto"),
        default="off",
        help="auto: importance sampling of the market, the funding cycle and the portfolios' "
        "quality toward the 99.9%% loss tail, the tilt found on pilot runs (docs/tail.md); "
        "every estimate is then weighted",
    )
    c.add_argument(
        "--tolerance",
        type=_tolerance,
        default=None,
        metavar="METRIC=REL[,...]",
        help="run in batches from --portfolios until each named metric of every structure has "
        "this relative standard error, e.g. economic_capital=0.02 (see --max-portfolios)",
    )
    c.add_argument(
        "--max-portfolios",
        type=_positive_int,
        default=None,
        metavar="N",
        help="most portfolios a run with --tolerance may use (default: 100 x --portfolios, at "
        "most 1,000,000 more)",
    )
    v.add_argument("--quick", action="store_true", help="about 10x fewer firms (seconds)")
    v.add_argument("--seed", type=_nonnegative_int, default=None, help=_VALIDATE_SEED_HELP)
    v.add_argument("--markdown", action="store_true", help="print a markdown table")
    w.add_argument("param", help="dotted parameter path")
    w.add_argument("values", help="comma-separated values, or START:STOP:NUM (evenly spaced)")
    w.add_argument("scenario", nargs="?", help="scenario TOML file (default: built-in)")
    w.add_argument("--grid", nargs=2, metavar=("PARAM2", "VALUES2"), help="a second parameter")
    w.add_argument("--metric", default="fair_value_per_principal", help="metric to print and plot")
    _run_options(w)
    w.add_argument(
        "--out",
        help="folder for sweep.csv and the plot(s); refused if it holds a sweep or a report "
        "(see --force)",
    )
    w.add_argument(
        "--force", action="store_true", help="let --out replace the sweep already in the folder"
    )
    b.add_argument("param", help="dotted parameter path of the structure, e.g. loan.rate")
    b.add_argument("lo", type=_finite, help="lower end of the bracket")
    b.add_argument("hi", type=_finite, help="upper end of the bracket")
    b.add_argument("scenario", nargs="?", help="scenario TOML file (default: built-in)")
    b.add_argument("--structure", required=True, help="structure whose term is solved for")
    goal = b.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target", type=_finite, help="value the metric must reach")
    goal.add_argument("--against", help="structure whose metric must be matched")
    b.add_argument("--metric", default="fair_value_per_principal", help="metric (a smooth one)")
    _run_options(b, bootstrap=False)
    ssub = s.add_subparsers(dest="action", required=True, parser_class=_Parser)
    show = ssub.add_parser(
        "show", help="print the built-in scenario, or a preset, as commented TOML"
    )
    show.add_argument(
        "--preset",
        metavar="NAME",
        help="an industry or regional preset (invlend scenario list names them; default: the "
        "built-in scenario)",
    )
    ssub.add_parser("list", help="list the built-in scenario and the presets")
    chk = ssub.add_parser("check", help="validate a scenario TOML file")
    chk.add_argument("file")
    return p


def _inputs(args: argparse.Namespace):
    import invlend as il

    scenario = il.Scenario.from_toml(args.scenario) if args.scenario else il.Scenario.default()
    structures = (
        il.Structure.from_toml(args.structures) if args.structures else il.default_structures()
    )
    if not structures:
        raise ValueError(f"--structures: {args.structures} has no [[structure]] tables")
    _checks.seed("--seed", args.seed)
    if getattr(args, "bootstrap", 0) < 0:
        raise ValueError(f"--bootstrap: must be >= 0, got {args.bootstrap}")
    if args.discount_rate is not None:
        data = scenario.model_dump()
        data["market"] = {**data["market"], "discount_rate": args.discount_rate}
        try:
            scenario = il.Scenario.model_validate(data)
        except ValidationError as exc:
            raise ValueError(f"--discount-rate: {_one_line(exc)}") from None
    return scenario, structures


#: Files that mark a folder as the output of a command: ``invlend.report.write_report``
#: writes report.html and summary.json, a sweep writes sweep.csv.
_MARKERS = {"compare": ("report.html", "summary.json"), "sweep": ("sweep.csv",)}
_WHAT = {"compare": "a compare report", "sweep": "a sweep"}


def _check_out(out: Path | None, command: str | None = None, force: bool = False) -> None:
    """Refuse ``out`` before any work.

    It must be a folder (or not exist), hold no other command's output, and hold this
    command's output only with ``force``.
    """
    if out is None:
        return
    for folder in (out, *out.parents):  # the nearest existing folder must be a folder
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"--out: {folder} exists and is not a folder")
            break
    if command is None or not out.is_dir():
        return
    for kind, names in _MARKERS.items():
        found = [n for n in names if (out / n).exists()]
        if not found:
            continue
        if kind != command:
            raise ValueError(
                f"--out: {out} holds {_WHAT[kind]} ({found[0]}); give {command} a folder of its own"
            )
        if not force:
            raise ValueError(
                f"--out: {out} already holds {_WHAT[kind]} ({found[0]}); add --force to "
                "replace it, or give another folder"
            )


def _tolerance(text: str) -> dict[str, float]:
    """``METRIC=REL[,METRIC=REL]`` as a dict (the metric names are checked by simulate)."""
    out = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected METRIC=REL[,METRIC=REL], e.g. economic_capital=0.02, got {item!r}"
            ) from None
    return out


def _sim_kw(args: argparse.Namespace) -> dict:
    kw = dict(
        n_portfolios=args.portfolios,
        portfolio_size=args.size,
        seed=args.seed,
        backend=args.backend,
        keep=args.keep,
    )
    if args.measures is not None:
        kw["measures"] = "real_world" if args.measures == "real_world" else _BOTH
    return kw


_BOTH = ("real_world", "risk_neutral")


def _rates(args: argparse.Namespace, scenario) -> str:
    """The line that says which hurdle and discount rate the figures rest on."""
    parts = []
    if getattr(args, "hurdle", None) is not None:
        parts.append(f"hurdle rate {args.hurdle:.2%} a year (EVA)")
    rate = scenario.market.discount_rate
    where = "--discount-rate" if args.discount_rate is not None else "the scenario's"
    parts.append(f"discount rate {rate:.2%} a year, continuously compounded ({where})")
    return "; ".join(parts)


def _compare(args: argparse.Namespace) -> int:
    import invlend as il

    scenario, structures = _inputs(args)
    baseline = args.baseline or structures[0].name
    if baseline not in [s.name for s in structures]:
        raise ValueError(
            f"--baseline: no structure named {baseline!r}; have {[s.name for s in structures]}"
        )
    out = Path(args.out) if args.out else None
    _check_out(out, "compare", args.force)
    n_firms = args.portfolios * args.size
    progress = args.progress or (sys.stderr.isatty() and n_firms >= 2_000_000)
    res = il.simulate(
        scenario,
        structures,
        **_sim_kw(args),
        progress=progress,
        sample_paths=min(2000, n_firms) if out is not None and n_firms > 0 else 0,
        tail=None if args.tail == "off" else "auto",
        tolerance=args.tolerance,
        max_portfolios=args.max_portfolios,
    )
    if res.stopping is not None:
        stop = res.stopping
        shown = ", ".join(f"{m} {'undefined' if p is None else f'{p:.2%}'}"
                          for m, p in stop["precision"].items())  # fmt: skip
        print(f"stopped after {res.n_portfolios} portfolios ({stop['reason']}): worst relative "
              f"standard error {shown}\n")  # fmt: skip
    print(res.summary(n_boot=args.bootstrap, hurdle=args.hurdle, progress=progress))
    if len(structures) > 1:
        print()
        print(res.compare(baseline=baseline, n_boot=args.bootstrap, hurdle=args.hurdle,
                          progress=progress))  # fmt: skip
    print()
    print(_rates(args, scenario))
    if out is not None:
        from invlend.report import write_report

        written = write_report(
            res, out, baseline=baseline, n_boot=args.bootstrap, hurdle=args.hurdle
        )
        print(f"\nwrote {len(written)} files to {out}/: " + ", ".join(p.name for p in written))
    return 0


def _values(text: str, what: str) -> list[float]:
    try:
        if ":" in text:
            start, stop, num = text.split(":")
            n = int(num)
            if n < 1:
                raise ValueError
            items = None
        else:
            items = [v for v in text.split(",") if v.strip()]
            n = len(items)
    except ValueError:
        raise ValueError(
            f"{what}: expected comma-separated numbers or START:STOP:NUM, got {text!r}"
        ) from None
    if n > MAX_VALUES:
        raise ValueError(f"{what}: at most {MAX_VALUES} values, got {n}")
    try:
        if items is None:
            import numpy as np

            return [float(v) for v in np.linspace(float(start), float(stop), n)]
        return [float(v) for v in items]
    except ValueError:
        raise ValueError(
            f"{what}: expected comma-separated numbers or START:STOP:NUM, got {text!r}"
        ) from None


def _warn_importable(out: Path) -> None:
    """Warn when Python started next to ``out`` would import it as a package.

    A folder without ``__init__.py`` whose name is an identifier is what ``import NAME``
    finds when no module NAME is installed (an installed one takes precedence): numba, which
    imports ``coverage`` when it is installed, fails in any folder that holds ``coverage/``.
    Which names libraries try cannot be known, so every identifier that no installed module
    takes gets the warning.
    """
    name = out.name
    if not name.isidentifier() or keyword.iskeyword(name):
        return
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin is not None:
        return  # an installed module of that name wins over the folder
    where = out.parent if str(out.parent) != "." else Path.cwd()
    _say(
        f"invlend: warning: --out {out}: a Python started in {where} would import this folder "
        f"as the module {name!r}, which breaks libraries that use {name!r} only when it is "
        "installed (numba does so with coverage); prefer a name with a hyphen, which cannot "
        "be imported"
    )


def _sweep(args: argparse.Namespace) -> int:
    import invlend as il
    from invlend import metrics as M

    scenario, structures = _inputs(args)
    _checks.metric("--metric", args.metric, M.METRICS)
    params = [args.param]
    values = [_values(args.values, "values")]
    if args.grid:
        params.append(args.grid[0])
        values.append(_values(args.grid[1], "--grid values"))
        if len(values[0]) * len(values[1]) > MAX_POINTS:
            raise ValueError(
                f"--grid: at most {MAX_POINTS} points on a grid, got "
                f"{len(values[0])} x {len(values[1])} = {len(values[0]) * len(values[1])}"
            )
    out = Path(args.out) if args.out else None
    _check_out(out, "sweep", args.force)
    sw = il.sweep(
        scenario,
        structures,
        params if len(params) > 1 else params[0],
        values if len(values) > 1 else values[0],
        n_boot=args.bootstrap,
        progress=sys.stderr.isatty(),
        **_sim_kw(args),
    )
    print(sw.table(args.metric))
    print()
    print(_rates(args, scenario))
    if out is not None:
        _warn_importable(out)
        written = _write_sweep(sw, out, args.metric)
        print(f"\nwrote {out}/: " + ", ".join(written))
    return 0


def _write_sweep(sw, out: Path, metric: str) -> list[str]:
    import shutil
    import tempfile

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        sw.to_csv(tmp / "sweep.csv")
        # One parameter: every structure on one plot. A grid: one plot per structure.
        plots = {"sweep.png": None} if len(sw.params) == 1 else {
            f"sweep_{n}.png": [n] for n in sw.structures
        }  # fmt: skip
        for name, structures in plots.items():
            fig = Figure(figsize=(8, 5))
            FigureCanvasAgg(fig)
            sw.plot(metric, ax=fig.subplots(), structures=structures)
            fig.tight_layout()
            fig.savefig(tmp / name, dpi=110)
        out.mkdir(exist_ok=True)
        written = []
        for f in sorted(tmp.iterdir()):
            f.replace(out / f.name)
            written.append(f.name)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _breakeven(args: argparse.Namespace) -> int:
    import invlend as il

    scenario, structures = _inputs(args)
    by_name = {s.name: s for s in structures}
    for opt, name in (("--structure", args.structure), ("--against", args.against)):
        if name is not None and name not in by_name:
            raise ValueError(f"{opt}: no structure named {name!r}; have {list(by_name)}")
    result = il.breakeven(
        scenario,
        by_name[args.structure],
        args.param,
        target=args.target,
        bracket=(args.lo, args.hi),
        metric=args.metric,
        against=by_name[args.against] if args.against else None,
        **_sim_kw(args),
    )
    print(result)
    print()
    print(_rates(args, scenario))
    return 0


def _scenario(args: argparse.Namespace) -> int:
    import invlend as il
    from invlend.config import preset_toml
    from invlend.scenarios import default_scenario_toml

    if args.action == "list":
        presets = il.Scenario.presets()
        width = max(map(len, presets))
        for name, description in presets.items():
            print(f"{name:<{width}}  {description}")
        return 0
    if args.action == "show":
        if args.preset is None:
            sys.stdout.write(default_scenario_toml())
            return 0
        presets = il.Scenario.presets()
        if args.preset not in presets:
            raise ValueError(
                f"--preset: unknown preset {args.preset!r}; choose from {', '.join(presets)}"
            )
        sys.stdout.write(preset_toml(args.preset))
        return 0
    sc = il.Scenario.from_toml(args.file)
    print(
        f"{args.file}: valid scenario, {len(sc.stages)} stages "
        f"({', '.join(s.name for s in sc.stages)}), {sc.n_steps} steps"
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    from invlend import validation

    seed = _checks.seed("--seed", validation.DEFAULT_SEED if args.seed is None else args.seed)
    report = validation.run(quick=args.quick, seed=seed)
    print(report.to_markdown() if args.markdown else report)
    return 0 if report.passed else 1


_COMMANDS = {
    "compare": _compare,
    "validate": _validate,
    "sweep": _sweep,
    "breakeven": _breakeven,
    "scenario": _scenario,
}


def _joined(message: str) -> str:
    """A message of several lines (a header and one line per error) as one line."""
    lines = [x.strip() for x in message.splitlines() if x.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    head, rest = lines[0], lines[1:]
    return f"{head} {'; '.join(rest)}" if head.endswith(":") else "; ".join(lines)


def _say(line: str) -> None:
    """Write one line to standard error; a closed standard error is not worth a traceback."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _silence_closed_pipes() -> None:
    """Point a stream whose reader has gone at os.devnull, so that the flush at exit passes.

    Python flushes ``sys.stdout`` and ``sys.stderr`` once more at shutdown; text still
    buffered for a closed pipe would fail there with "Exception ignored ... BrokenPipeError"
    and status 120 (the recipe of the Python documentation's note on SIGPIPE).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:
                try:
                    os.dup2(devnull, stream.fileno())
                except (OSError, ValueError):  # not a file descriptor (captured, closed)
                    pass
    finally:
        os.close(devnull)


def _run(argv: list[str] | None) -> int:
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as exc:  # --help (0), or a usage error already reported (2)
            status = exc.code if isinstance(exc.code, int) else 2
        else:
            status = _COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe fails here, not at exit
        return status
    except BrokenPipeError:  # before OSError, of which it is a subclass
        _silence_closed_pipes()
        return 141
    except ValidationError as exc:
        _say(f"invlend: error: {_one_line(exc)}")
    except (ValueError, TypeError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        _say(f"invlend: error: {flag_message(_joined(str(msg)))}")
    except OSError as exc:
        reason = exc.strerror or exc
        _say(
            f"invlend: error: {exc.filename}: {reason}"
            if exc.filename
            else f"invlend: error: {reason}"
        )
    except RecursionError:
        # config._read_toml refuses deep input files; this is the net under anything else
        _say("invlend: error: input nested too deeply (maximum recursion depth exceeded)")
    except MemoryError as exc:
        detail = f": {exc}" if str(exc) else ""
        _say(
            f"invlend: error: out of memory{detail}; fewer --portfolios, a smaller --size or "
            "--keep aggregates"
        )
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``invlend`` command; returns the exit status.

    ===  =====================================================================================
    0    success
    1    ``invlend validate``: a check failed
    2    bad input: one line ``invlend: error: ...`` on standard error, nothing written
    130  interrupted (Ctrl-C): ``invlend: interrupted`` on standard error, nothing written
    141  the reader of standard output went away (``invlend compare | head -1``): no
         message, as a Unix tool stopped by SIGPIPE (128 + 13); nothing more is written
    ===  =====================================================================================

    The console script goes through :mod:`invlend_cli`, which catches a Ctrl-C during the
    import of the package as well.
    """
    try:
        return _run(argv)
    except KeyboardInterrupt:
        _say("invlend: interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
