"""The command line, run as a subprocess: outputs, one-line errors with exit code 2, help."""

from __future__ import annotations

import csv
import json

import pytest

import invlend as il
from commands import run_cli as cli
from invlend import metrics as M
from invlend.engine import _cuda_problem


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("invlend: error:"), lines[0]
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "report"
    proc = cli("compare", "--portfolios", 30, "--size", 20, "--seed", 1, "--out", out)
    return proc, out


def test_compare_prints_tables_and_writes_files(compare_run):
    proc, out = compare_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for s in il.default_structures():
        assert s.name in proc.stdout
    assert "invlend summary: 30 portfolios x 20 firms, seed 1" in proc.stdout
    assert "paired comparison against 'pure_loan'" in proc.stdout
    for metric in M.METRICS:  # pool_shortfall is n/a without a risk pool: not printed
        assert (metric in proc.stdout) == (metric != "pool_shortfall"), metric
    assert sorted(p.name for p in out.iterdir()) == [
        "comparison.csv",
        "cumulative_incidence.png",
        "decomposition.csv",
        "decomposition.png",
        "loss_distribution.png",
        "npv_distribution.png",
        "portfolios.csv",
        "report.html",
        "report.xlsx",
        "risk_return.png",
        "summary.csv",
        "summary.json",
        "value_fan.png",
    ]
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * len(M.METRICS)
    with open(out / "comparison.csv", newline="", encoding="utf-8") as fh:
        crows = list(csv.DictReader(fh))
    assert {r["structure"] for r in crows} == {"warrant_loan", "vc_linked"}
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert data["meta"]["seed"] == 1
    assert data["meta"]["n_portfolios"] == 30 and data["meta"]["portfolio_size"] == 20
    assert "versions" in data["meta"] and "scenario" in data["meta"]


def test_compare_matches_the_library(compare_run):
    _, out = compare_run
    res = il.simulate(
        il.Scenario.default(), il.default_structures(), n_portfolios=30, portfolio_size=20, seed=1
    )
    summary = res.summary(n_boot=400)
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            assert float(row["estimate"]) == pytest.approx(
                summary[row["structure"]][row["metric"]].estimate, rel=1e-12, nan_ok=True
            )


def test_compare_with_scenario_and_structure_files(tmp_path):
    scenario = tmp_path / "sc.toml"
    sc = il.Scenario.model_validate({**il.Scenario.default().model_dump(), "horizon_years": 4.0})
    sc.to_toml(scenario)
    structures = tmp_path / "st.toml"
    structures.write_text(
        '[[structure]]\nname = "a"\n[structure.loan]\nloan_to_value = 0.2\n\n'
        '[[structure]]\nname = "b"\n[structure.loan]\nloan_to_value = 0.1\nrate = 0.06\n',
        encoding="utf-8",
    )
    proc = cli(
        "compare",
        scenario,
        "--structures",
        structures,
        "--portfolios",
        10,
        "--size",
        10,
        "--baseline",
        "b",
        "--backend",
        "numpy",
        "--bootstrap",
        20,
    )
    assert proc.returncode == 0, proc.stderr
    assert "against 'b'" in proc.stdout and "a - b" in proc.stdout


def test_compare_single_structure_has_no_comparison(tmp_path):
    structures = tmp_path / "st.toml"
    structures.write_text(
        '[[structure]]\nname = "only"\n[structure.loan]\nloan_to_value = 0.2\n', encoding="utf-8"
    )
    out = tmp_path / "out"
    proc = cli("compare", "--structures", structures, "--portfolios", 5, "--size", 5, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "paired comparison" not in proc.stdout
    names = sorted(p.name for p in out.iterdir())
    assert "comparison.csv" not in names and {"summary.csv", "report.html"} <= set(names)


# ------------------------------------------------------------------------------ input errors


def _bad_files(tmp_path):
    malformed = tmp_path / "malformed.toml"
    malformed.write_text("horizon_years = = 5\n[[stages]\n", encoding="utf-8")
    invalid = tmp_path / "invalid.toml"
    text = il.Scenario.default().to_toml().replace("volatility = 1.0\n", "volatility = -1.0\n")
    assert "volatility = -1.0" in text
    invalid.write_text(text, encoding="utf-8")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(il.Scenario.default().to_toml() + "\nhorizon = 3\n", encoding="utf-8")
    bad_structures = tmp_path / "bad_structures.toml"
    bad_structures.write_text(
        '[[structure]]\nname = "x"\n[structure.loan]\nloan_to_value = 0.2\nrecovery_rate = 2\n',
        encoding="utf-8",
    )
    short = tmp_path / "short.toml"
    data = {**il.Scenario.default().model_dump(), "horizon_years": 2.0}
    il.Scenario.model_validate(data).to_toml(short)
    return dict(
        malformed=malformed,
        invalid=invalid,
        unknown=unknown,
        bad_structures=bad_structures,
        short=short,
    )


ERROR_CASES = {
    "unknown backend": (["--backend", "gpu"], ["backend", "cpu", "numpy"]),
    "malformed TOML": (["{malformed}"], ["not valid TOML"]),
    "invalid field": (["{invalid}"], ["volatility"]),
    "unknown field": (["{unknown}"], ["horizon"]),
    "missing file": (["{missing}"], ["cannot read"]),
    "zero portfolios": (["--portfolios", "0"], ["--portfolios"]),
    "zero size": (["--size", "0"], ["--size"]),
    "non-integer portfolios": (["--portfolios", "ten"], ["--portfolios"]),
    "negative seed": (["--seed", "-1"], ["seed"]),
    "negative bootstrap": (["--bootstrap", "-1"], ["bootstrap"]),
    "unknown baseline": (["--baseline", "nope"], ["baseline", "nope"]),
    "invalid structure": (["--structures", "{bad_structures}"], ["recovery_rate"]),
    "loan past the horizon": (["{short}"], ["maturity_years", "horizon"]),
    "unknown option": (["--colour", "red"], ["--colour"]),
}


if _cuda_problem()[0] is not None:  # only where no GPU (nor the simulator) can run it
    ERROR_CASES["cuda backend"] = (["--backend", "cuda"], ["backend", "cpu"])


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_compare_input_errors(tmp_path, case):
    files = {k: str(v) for k, v in _bad_files(tmp_path).items()}
    files["missing"] = str(tmp_path / "missing.toml")
    args, fragments = ERROR_CASES[case]
    args = [a.format(**files) for a in args]
    out = tmp_path / "report"
    proc = cli(
        "compare",
        *args,
        "--portfolios" if "--portfolios" not in args else "--size",
        3,
        "--out",
        out,
    )
    assert_one_line_error(proc, *fragments)
    assert not out.exists()
    assert proc.stdout == ""


def test_compare_out_below_a_file_is_an_input_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x", encoding="utf-8")
    proc = cli("compare", "--portfolios", 3, "--size", 3, "--out", blocker / "report")
    assert_one_line_error(proc, "--out")


def test_compare_out_is_a_file(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x", encoding="utf-8")
    proc = cli("compare", "--portfolios", 3, "--size", 3, "--out", blocker)
    assert_one_line_error(proc, "--out")
    assert blocker.read_text(encoding="utf-8") == "x"


# ------------------------------------------------------------------------------ scenario


def test_scenario_show_prints_the_default_scenario(tmp_path):
    proc = cli("scenario", "show")
    assert proc.returncode == 0, proc.stderr
    assert "[[stages]]" in proc.stdout and "#" in proc.stdout  # commented, with sources
    path = tmp_path / "shown.toml"
    path.write_text(proc.stdout, encoding="utf-8")
    assert il.Scenario.from_toml(path) == il.Scenario.default()


def test_scenario_check(tmp_path):
    good = tmp_path / "good.toml"
    il.Scenario.default().to_toml(good)
    proc = cli("scenario", "check", good)
    assert proc.returncode == 0, proc.stderr
    assert "valid scenario" in proc.stdout and "5 stages" in proc.stdout
    assert "seed, early, growth, expansion, mature" in proc.stdout
    files = _bad_files(tmp_path)
    assert_one_line_error(cli("scenario", "check", files["invalid"]), "volatility")
    assert_one_line_error(cli("scenario", "check", files["malformed"]), "not valid TOML")
    assert_one_line_error(cli("scenario", "check", tmp_path / "missing.toml"), "cannot read")
    assert_one_line_error(cli("scenario", "check", tmp_path), "cannot read")
    assert_one_line_error(cli("scenario", "check"), "file")
    assert_one_line_error(cli("scenario", "frobnicate"))
    assert_one_line_error(cli(), "command")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["compare", "--help"],
        ["scenario", "--help"],
        ["scenario", "show", "--help"],
        ["scenario", "check", "--help"],
        ["sweep", "--help"],
        ["breakeven", "--help"],
        ["validate", "--help"],
    ],
)
def test_help(args):
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: invlend")
    assert proc.stderr == ""


# ------------------------------------------------------------------------- sweep, breakeven


def test_sweep_command_writes_table_csv_and_plot(tmp_path):
    out = tmp_path / "sw"
    proc = cli("sweep", "loan.rate", "0.03:0.05:3", "--portfolios", 20, "--size", 10,
               "--bootstrap", 0, "--out", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "fair_value_per_principal by loan.rate" in proc.stdout and "0.04" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["sweep.csv", "sweep.png"]


def test_sweep_grid_writes_one_plot_per_structure(tmp_path):
    out = tmp_path / "grid"
    proc = cli("sweep", "warrant.coverage", "0.05,0.1", "--grid", "loan.rate", "0.03,0.05",
               "--portfolios", 10, "--size", 10, "--bootstrap", 0, "--out", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["sweep.csv", *sorted(f"sweep_{s.name}.png" for s in il.default_structures())]


def test_breakeven_command(tmp_path):
    proc = cli("breakeven", "loan.rate", 0, 0.3, "--structure", "pure_loan", "--target", 0,
               "--portfolios", 30, "--size", 20)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "pure_loan: fair_value_per_principal reaches 0 at loan.rate =" in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("sweep", "loan.nope", "0.1"), "unknown field 'loan.nope'"),
        (("sweep", "loan.rate", "a,b"), "values"),
        (("sweep", "loan.rate", "0.1", "--metric", "nope"), "--metric"),
        (("breakeven", "loan.rate", 0, 0.001, "--structure", "pure_loan", "--target", 0.5),
         "same sign"),
        (("breakeven", "loan.rate", 0, 0.1, "--structure", "nope", "--target", 0), "--structure"),
    ],
)  # fmt: skip
def test_sweep_and_breakeven_bad_input_is_one_line(tmp_path, args, fragment):
    out = tmp_path / "never"
    extra = ("--out", out) if args[0] == "sweep" else ()
    proc = cli(*args, "--portfolios", 5, "--size", 5, *extra)
    assert_one_line_error(proc, fragment)
    assert not out.exists()
