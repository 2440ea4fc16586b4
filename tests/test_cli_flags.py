"""The flags of the command line: one run size, defaults in --help, errors naming the flag,
--keep, --measures, --hurdle, --discount-rate, and --out folders that are never mixed."""

from __future__ import annotations

import csv
import json

import pytest

import invlend as il
from invlend import cli, validation
from invlend.capital import DEFAULT_HURDLE

TINY = ["--portfolios", "20", "--size", "10", "--bootstrap", "0"]
SWEEP = ["sweep", "loan.rate", "0.03,0.05"]
BREAKEVEN = ["breakeven", "loan.rate", "0", "0.3", "--structure", "pure_loan", "--target", "0"]


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line_error(capsys, *argv):
    status, out, err = run(capsys, *argv)
    assert status == 2, (status, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("invlend: error: "), err
    assert out == ""
    return lines[0]


class Stop(Exception):
    pass


@pytest.fixture
def seen(monkeypatch):
    """Record the keyword arguments of simulate/sweep/breakeven and stop before any work."""
    calls = []

    def fake(name):
        def f(*args, **kw):
            calls.append((name, args, kw))
            raise ValueError("stop here")

        return f

    for name in ("simulate", "sweep", "breakeven"):
        monkeypatch.setattr(il, name, fake(name))
    return calls


# ------------------------------------------------------------------- 1. one size, defaults


@pytest.mark.parametrize("argv", [["compare"], SWEEP, BREAKEVEN], ids=lambda a: a[0])
def test_one_default_size_for_every_run(capsys, seen, argv):
    assert one_line_error(capsys, *argv) == "invlend: error: stop here"
    (_, _, kw) = seen[0]
    assert kw["n_portfolios"] == cli.DEFAULT_PORTFOLIOS == 2000
    assert kw["portfolio_size"] == cli.DEFAULT_SIZE == 100
    assert kw["seed"] == cli.DEFAULT_SEED


@pytest.mark.parametrize("command", ["compare", "sweep", "breakeven"])
def test_help_shows_every_default(capsys, command):
    status, out, _ = run(capsys, command, "--help")
    assert status == 0
    text = " ".join(out.split())  # argparse wraps lines
    assert f"number of portfolios (default: {cli.DEFAULT_PORTFOLIOS})" in text
    assert f"applicant firms per portfolio (default: {cli.DEFAULT_SIZE})" in text
    assert f"(default: {cli.DEFAULT_SEED})" in text
    assert "(default: cpu)" in text and "(default: firms)" in text
    assert "--discount-rate" in text and "--measures" in text
    if command != "breakeven":
        assert f"(default: {cli.DEFAULT_BOOTSTRAP})" in text
    if command == "compare":
        assert f"(default: {DEFAULT_HURDLE})" in text
    if command == "sweep":
        assert "(default: fair_value_per_principal)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_validate_seed_help_matches_the_validation(capsys):
    status, out, _ = run(capsys, "validate", "--help")
    assert status == 0
    assert f"(default: {validation.DEFAULT_SEED})" in " ".join(out.split())


# ------------------------------------------------------------------------------ 2. --keep


def test_keep_is_passed_to_simulate(capsys, seen):
    one_line_error(capsys, "compare", "--keep", "aggregates")
    assert seen[0][2]["keep"] == "aggregates"
    seen.clear()
    one_line_error(capsys, "compare")
    assert seen[0][2]["keep"] == "firms"


def test_keep_refuses_other_values(capsys):
    line = one_line_error(capsys, "compare", "--keep", "everything")
    assert "--keep" in line and "aggregates" in line


def test_compare_keep_aggregates_writes_a_report(capsys, tmp_path):
    out = tmp_path / "report"
    status, _, err = run(capsys, "compare", *TINY, "--keep", "aggregates", "--out", out)
    assert status == 0, err
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert data["meta"]["keep"] == "aggregates"


def test_memory_error_of_the_library_names_the_flags(capsys, monkeypatch):
    def fail(*args, **kw):  # the message of engine._check_memory
        raise ValueError(
            "n_portfolios: 9000000 portfolios x 100 firms need 900.0 GiB for the results but "
            "only 100.0 GiB of memory is available; keep='aggregates' keeps only per-portfolio "
            "totals (3.00 GiB)"
        )

    monkeypatch.setattr(il, "simulate", fail)
    line = one_line_error(capsys, "compare")
    assert line.startswith("invlend: error: --portfolios: 9000000 portfolios")
    assert "--keep aggregates keeps only" in line
    assert "keep=" not in line and "n_portfolios" not in line


def test_bare_memory_error_suggests_keep(capsys, monkeypatch):
    def fail(*args, **kw):
        raise MemoryError

    monkeypatch.setattr(il, "simulate", fail)
    line = one_line_error(capsys, "compare")
    assert "--portfolios" in line and "--size" in line and "--keep aggregates" in line


# ------------------------------------------------------------------- 3. errors name flags


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--portfolios", "0"], "--portfolios"),
        (["--portfolios", "ten"], "--portfolios"),
        (["--size", "-3"], "--size"),
        (["--seed", "-1"], "--seed"),
        (["--bootstrap", "-1"], "--bootstrap"),
        (["--hurdle", "11"], "--hurdle"),
        (["--hurdle", "nan"], "--hurdle"),
        (["--discount-rate", "2"], "--discount-rate"),
        (["--discount-rate", "x"], "--discount-rate"),
    ],
)
def test_bad_values_are_refused_by_argparse_naming_the_flag(capsys, seen, args, flag):
    line = one_line_error(capsys, "compare", *args)
    assert f"argument {flag}:" in line
    assert "n_portfolios" not in line and "portfolio_size" not in line
    assert seen == []  # refused before any run


@pytest.mark.parametrize("bad", ["nan", "inf", "x"])
def test_breakeven_numbers_must_be_finite(capsys, seen, bad):
    line = one_line_error(capsys, *BREAKEVEN[:-1], bad)
    assert "argument --target:" in line and seen == []
    line = one_line_error(capsys, "breakeven", "loan.rate", bad, "0.3", "--structure", "a",
                          "--target", "0")  # fmt: skip
    assert "argument lo:" in line


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("n_portfolios: must be >= 1, got 0", "--portfolios: must be >= 1, got 0"),
        ("portfolio_size: must be >= 1, got 0", "--size: must be >= 1, got 0"),
        ("n_boot: must be >= 0, got -1", "--bootstrap: must be >= 0, got -1"),
        ("hurdle: must be <= 10, got 11", "--hurdle: must be <= 10, got 11"),
        ("metric: unknown 'x'", "--metric: unknown 'x'"),
        ("backend: unknown 'gpu'", "--backend: unknown 'gpu'"),
        (
            "n_portfolios * portfolio_size = 5 firms exceeds the limit of 4 for per-firm "
            "results; keep='aggregates' has no such limit",
            "--portfolios * --size = 5 firms exceeds the limit of 4 for per-firm results; "
            "--keep aggregates has no such limit",
        ),
        (
            "keep: this result kept only per-portfolio aggregates; run simulate(..., "
            "keep='firms') for per-firm arrays",
            "--keep: this result kept only per-portfolio aggregates; run --keep firms for "
            "per-firm arrays",
        ),
        (
            "measures: the risk-neutral measure needs default_barrier = 0; set scenario "
            "default_barrier to 0 or measures=('real_world',)",
            "--measures: the risk-neutral measure needs default_barrier = 0; set scenario "
            "default_barrier to 0 or --measures real_world",
        ),
        # a stage may be called seed: only the name before the first colon is an argument
        ("unknown field 'stages.seed.x'; seed", "unknown field 'stages.seed.x'; seed"),
        ("stages.seed.default_hazard: bad", "stages.seed.default_hazard: bad"),
    ],
)
def test_flag_message(message, expected):
    assert cli.flag_message(message) == expected


def test_library_error_during_a_run_names_the_flag(capsys, monkeypatch):
    def fail(*args, **kw):
        raise ValueError("n_boot: must be >= 0, got -1")

    monkeypatch.setattr(il, "sweep", fail)
    line = one_line_error(capsys, *SWEEP)
    assert line == "invlend: error: --bootstrap: must be >= 0, got -1"


# --------------------------------------------------- 4. --hurdle, --discount-rate, --measures


def test_compare_hurdle_reaches_summary_and_report(capsys, tmp_path):
    out = tmp_path / "report"
    status, text, err = run(capsys, "compare", *TINY, "--hurdle", "0.2", "--out", out)
    assert status == 0, err
    assert "hurdle rate 20.00% a year (EVA)" in text
    assert "discount rate 2.00% a year, continuously compounded (the scenario's)" in text
    res = il.simulate(
        il.Scenario.default(), il.default_structures(), n_portfolios=20, portfolio_size=10,
        seed=cli.DEFAULT_SEED,
    )  # fmt: skip
    want = res.summary(n_boot=0, hurdle=0.2)
    default = res.summary(n_boot=0)
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == "eva"]
    assert rows
    for r in rows:
        assert float(r["estimate"]) == pytest.approx(want[r["structure"]]["eva"].estimate)
        assert float(r["estimate"]) != pytest.approx(default[r["structure"]]["eva"].estimate)


def test_discount_rate_overrides_the_scenario(capsys, seen, tmp_path):
    scenario = tmp_path / "sc.toml"
    il.Scenario.default().to_toml(scenario)
    one_line_error(capsys, "compare", scenario, "--discount-rate", "0.05")
    sc = seen[0][1][0]
    assert sc.market.discount_rate == 0.05
    expected = il.Scenario.default().market.model_copy(update={"discount_rate": 0.05})
    assert sc.market == expected
    seen.clear()
    one_line_error(capsys, *SWEEP, "--discount-rate", "-0.01")
    assert seen[0][1][0].market.discount_rate == -0.01
    seen.clear()
    one_line_error(capsys, *BREAKEVEN)
    assert seen[0][1][0].market.discount_rate == il.Scenario.default().market.discount_rate


def test_discount_rate_is_printed_and_recorded(capsys, tmp_path):
    out = tmp_path / "report"
    status, text, err = run(capsys, "compare", *TINY, "--discount-rate", "0.05", "--out", out)
    assert status == 0, err
    assert "discount rate 5.00% a year, continuously compounded (--discount-rate)" in text
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert data["meta"]["scenario"]["market"]["discount_rate"] == 0.05


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, None), ("real_world", "real_world"), ("both", ("real_world", "risk_neutral"))],
)
@pytest.mark.parametrize("argv", [["compare"], SWEEP, BREAKEVEN], ids=lambda a: a[0])
def test_measures_are_passed_on(capsys, seen, argv, given, expected):
    one_line_error(capsys, *argv, *(["--measures", given] if given else []))
    kw = seen[0][2]
    assert kw.get("measures") == expected


def test_breakeven_prints_the_discount_rate(capsys):
    status, text, err = run(capsys, *BREAKEVEN, "--portfolios", "20", "--size", "10")
    assert status == 0, err
    assert "pure_loan: fair_value_per_principal reaches 0 at loan.rate =" in text
    assert "discount rate 2.00% a year" in text and "hurdle" not in text


# ------------------------------------------------------------------------- 5. --out folders


def _listing(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_compare_out_refuses_a_report_unless_force(capsys, tmp_path, monkeypatch):
    out = tmp_path / "report"
    status, _, err = run(capsys, "compare", *TINY, "--out", out)
    assert status == 0, err
    before = _listing(out)
    calls = []
    monkeypatch.setattr(il, "simulate", lambda *a, **k: calls.append(1))
    line = one_line_error(capsys, "compare", *TINY, "--out", out)
    assert "--out" in line and "already holds a compare report" in line and "--force" in line
    assert calls == [] and _listing(out) == before  # refused before any work, nothing written
    monkeypatch.undo()
    status, _, err = run(capsys, "compare", *TINY, "--seed", "2", "--out", out, "--force")
    assert status == 0, err
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert data["meta"]["seed"] == 2


def test_compare_out_into_an_existing_unrelated_folder_is_fine(capsys, tmp_path, seen):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("x", encoding="utf-8")
    assert one_line_error(capsys, "compare", "--out", out) == "invlend: error: stop here"


def test_sweep_and_compare_never_share_a_folder(capsys, tmp_path, seen):
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.html").write_text("<html></html>", encoding="utf-8")
    sweep = tmp_path / "sweep-out"
    sweep.mkdir()
    (sweep / "sweep.csv").write_text("a\n", encoding="utf-8")
    for force in ([], ["--force"]):
        line = one_line_error(capsys, *SWEEP, "--out", report, *force)
        assert "--out" in line and "holds a compare report" in line
        line = one_line_error(capsys, "compare", "--out", sweep, *force)
        assert "--out" in line and "holds a sweep" in line
    assert seen == []
    assert sorted(p.name for p in report.iterdir()) == ["report.html"]
    assert sorted(p.name for p in sweep.iterdir()) == ["sweep.csv"]


def test_summary_json_alone_marks_a_report(capsys, tmp_path, seen):
    out = tmp_path / "report"
    out.mkdir()
    (out / "summary.json").write_text("{}", encoding="utf-8")
    line = one_line_error(capsys, *SWEEP, "--out", out)
    assert "holds a compare report (summary.json)" in line and seen == []


def test_sweep_out_refuses_a_sweep_unless_force(capsys, tmp_path, seen):
    out = tmp_path / "sweep-out"
    out.mkdir()
    (out / "sweep.csv").write_text("a\n", encoding="utf-8")
    line = one_line_error(capsys, *SWEEP, "--out", out)
    assert "already holds a sweep" in line and "--force" in line and seen == []
    assert one_line_error(capsys, *SWEEP, "--out", out, "--force") == "invlend: error: stop here"


def test_an_error_of_several_lines_is_printed_as_one(capsys, monkeypatch):
    def fail(*args, **kw):
        raise ValueError("2 invalid inputs in structures:\n  a: bad\n  n_portfolios: worse\n")

    monkeypatch.setattr(il, "simulate", fail)
    line = one_line_error(capsys, "compare")
    assert line == "invlend: error: 2 invalid inputs in structures: a: bad; --portfolios: worse"
