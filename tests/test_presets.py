"""Industry and regional scenario presets: loading, their sources line by line, the CLI.

Interface tier (one statistical check: a preset's simulated default share against the exact
stage chain of ``il.cohort``, within 4 standard errors).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import invlend as il
from commands import run_cli as cli
from conftest import assert_mc_close, clustered_mean_se
from invlend.config import preset_toml
from invlend.scenarios import default_scenario_toml

ROOT = Path(__file__).resolve().parents[1]
PRESETS = [n for n in il.Scenario.presets() if n != "default"]
INDUSTRIES = {"software", "semiconductors", "biomedicine"}
REGIONS = {"yangtze_delta", "greater_bay", "central_west"}
MARK = re.compile(r"\[(S|C|E|R)\]")


def test_the_presets_are_listed_with_descriptions():
    presets = il.Scenario.presets()
    names = list(presets)
    assert names[0] == "default" and names[1:] == sorted(names[1:])
    assert INDUSTRIES | REGIONS <= set(names)
    for name, text in presets.items():
        assert 30 < len(text) < 200 and "\n" not in text, (name, text)
    presets["software"] = "changed"  # a new dict each call
    assert il.Scenario.presets()["software"] != "changed"
    # the files are package data: pyproject's globs, relative to the package, cover them
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["invlend"]
    package = ROOT / "src" / "invlend"
    shipped = {p for g in globs for p in package.glob(g)}
    files = set((package / "data" / "presets").glob("*.toml"))
    assert {f.stem for f in files} == set(PRESETS) and files <= shipped


@pytest.mark.parametrize("name", ["default", *PRESETS])
def test_each_preset_loads_is_frozen_and_round_trips(name, tmp_path):
    sc = il.Scenario.preset(name)
    assert isinstance(sc, il.Scenario)
    assert il.Scenario.preset(name) is sc  # cached, as Scenario.default()
    with pytest.raises(Exception, match="frozen"):
        sc.horizon_years = 3.0
    assert [s.name for s in sc.stages] == ["seed", "early", "growth", "expansion", "mature"]
    path = tmp_path / f"{name}.toml"
    sc.to_toml(path)
    assert il.Scenario.from_toml(path) == sc
    shown = tmp_path / "shown.toml"
    shown.write_text(preset_toml(name), encoding="utf-8")  # the commented file reads back
    assert il.Scenario.from_toml(shown) == sc
    assert (name == "default") == (sc == il.Scenario.default())


def test_default_is_the_built_in_scenario():
    assert il.Scenario.preset("default") is il.Scenario.default()
    assert preset_toml("default") == default_scenario_toml()


@pytest.mark.parametrize(
    ("name", "error", "fragments"),
    [
        ("nope", ValueError, ["name: unknown preset 'nope'", "default, biomedicine", "software"]),
        ("Software", ValueError, ["name: unknown preset 'Software'"]),
        ("", ValueError, ["name: unknown preset ''"]),
        (3, TypeError, ["name: expected a preset name (str), got int"]),
        (None, TypeError, ["name: expected a preset name (str), got NoneType"]),
    ],
)
def test_unknown_preset_names_the_argument_and_lists_the_presets(name, error, fragments):
    for call in (il.Scenario.preset, preset_toml):
        with pytest.raises(error) as info:
            call(name)
        for f in fragments:
            assert f in str(info.value), (f, str(info.value))


# ---------------------------------------------------------------- sources, line by line

_VALUE = re.compile(r"^(?P<key>\w+)\s*=\s*(?P<val>[^#]*?)\s*(?:#(?P<com>.*))?$")


def _value_lines(text: str) -> list[tuple[str, object, str]]:
    """``(path, value, comment)`` of every value line, the comment with its continuation lines.

    Paths are those of the model: ``distress_value``, ``market.jump_rate``,
    ``stages.seed.ipo_hazard``, ``cycle.hot_to_cold``.
    """
    out: list[list] = []
    section, stage = "", None
    for line in text.splitlines():
        if re.match(r"^\s+#", line) and out:  # continuation of the last line's comment
            out[-1][2] += " " + line.strip().lstrip("#").strip()
            continue
        if line.startswith("[[stages]]"):
            section, stage = "stages", None
            continue
        if line.startswith("["):
            section, stage = line.strip().strip("[]"), None
            continue
        m = _VALUE.match(line)
        if not m:
            assert not line.strip() or line.startswith("#"), line
            continue
        value = tomllib.loads(f"v = {m['val']}")["v"]
        if section == "stages" and m["key"] == "name":
            stage = value
        path = ".".join(p for p in (section, stage, m["key"]) if p)
        out.append([path, value, (m["com"] or "").strip()])
    return [tuple(x) for x in out]


def _leaves(data, prefix=""):
    """The scalar fields of a dumped scenario by path, stages by name."""
    if isinstance(data, dict):
        items = data.items()
    else:
        items = ((s["name"], s) for s in data)
    out = {}
    for k, v in items:
        path = f"{prefix}{k}"
        if isinstance(v, dict | list):
            out.update(_leaves(v, path + "."))
        else:
            out[path] = v
    return out


@pytest.mark.parametrize("name", PRESETS)
def test_every_line_gives_its_source_or_says_it_is_the_built_ins(name):
    text = preset_toml(name)
    assert text.startswith(f'# invlend preset "{name}"\n')
    base = _leaves(il.Scenario.default().model_dump(mode="json", exclude_none=True))
    built_in = {p: v for p, v, _ in _value_lines(default_scenario_toml())}
    changed_lines, seen = set(), set()
    for path, value, comment in _value_lines(text):
        assert path in built_in, f"{name}: {path} is not a line of the built-in scenario"
        seen.add(path)
        if value != built_in[path]:
            changed_lines.add(path)
            assert comment.startswith("preset: "), (name, path, comment)
            assert MARK.search(comment), f"{name}: {path} changed without a source mark"
            was = f"{built_in[path]:g}" if isinstance(value, float) else str(built_in[path])
            assert f"was {was}" in comment or " x " in comment, (name, path, comment)
        else:
            assert comment.startswith("built-in"), (name, path, comment)
    assert seen == set(built_in), f"{name}: lines missing {sorted(set(built_in) - seen)}"
    # what differs in the model is exactly what the marked lines change
    got = _leaves(il.Scenario.preset(name).model_dump(mode="json", exclude_none=True))
    differ = {p for p in got if got[p] != base.get(p)} | (set(base) - set(got))
    assert differ == changed_lines, (name, sorted(differ ^ changed_lines))
    # a moderate number of fields (a stage field changed in several stages counts once)
    fields = {p.rsplit(".", 1)[-1] if p.startswith("stages.") else p for p in differ}
    print(f"{name}: {len(fields)} fields changed: {sorted(fields)}")
    assert 3 <= len(fields) <= 12, (name, sorted(fields))


def test_the_presets_differ_as_their_headers_say():
    d = il.Scenario.default()
    sw, semi, bio = (il.Scenario.preset(n) for n in ("software", "semiconductors", "biomedicine"))
    assert sw.distress_value < d.distress_value < semi.distress_value
    assert all(a.ma_hazard > b.ma_hazard for a, b in zip(sw.stages, d.stages, strict=True))
    assert semi.market.factor_loading > d.market.factor_loading
    assert semi.cycle.stationary_cold == pytest.approx(d.cycle.stationary_cold)  # 1/3 cold
    assert 1 / semi.cycle.hot_to_cold + 1 / semi.cycle.cold_to_hot == pytest.approx(4.0)
    assert d.market.jump_rate == 0.0 < bio.market.jump_rate and bio.market.jump_mean < 0.0
    # the two-point readout jump of the header: success p = 0.46, +0.4 / -0.8
    p = (0.520 + 0.289 + 0.578) / 3
    assert p == pytest.approx(0.46, abs=0.005)
    assert bio.market.jump_mean == pytest.approx(p * 0.4 - (1 - p) * 0.8, abs=0.005)
    assert bio.market.jump_vol == pytest.approx(1.2 * (p * (1 - p)) ** 0.5, abs=0.005)
    young = {n: il.Scenario.preset(n).stages[1].weight for n in REGIONS}
    assert young["yangtze_delta"] > d.stages[1].weight > young["central_west"]


# ---------------------------------------------------------------- against the stage chain


def test_biomedicine_default_share_matches_the_stage_chain():
    # The chain is exact without the value and runway factors; the preset's jumps, cycle,
    # hazards and stage mix stay. Jumps move values, not the chain's events, so P(default by
    # T) of every applicant must match the grid chain.
    sc = il.Scenario.preset("biomedicine").replace(
        hazard_value_elasticity=0.0, runway_hazard_multiplier=1.0
    )
    res = il.simulate(sc, il.pure_loan(), n_portfolios=400, portfolio_size=100, seed=20260520)
    ref = il.cohort(sc, horizon_years=sc.horizon_years, grid=True)
    o = res["pure_loan"].outcomes
    for code, what in ((il.Event.DEFAULT, "default"), (il.Event.IPO, "ipo")):
        est, se = clustered_mean_se(o.event == code)
        assert_mc_close(est, ref.probability(what), se, label=f"biomedicine P({what} by T)")


# ---------------------------------------------------------------- the command line


def test_cli_lists_and_shows_presets(tmp_path):
    listed = cli("scenario", "list")
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert [r.split()[0] for r in rows] == list(il.Scenario.presets())
    assert "STAR Market" in listed.stdout
    shown = cli("scenario", "show", "--preset", "semiconductors")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == preset_toml("semiconductors")
    path = tmp_path / "chips.toml"
    path.write_text(shown.stdout, encoding="utf-8")
    assert il.Scenario.from_toml(path) == il.Scenario.preset("semiconductors")
    checked = cli("scenario", "check", path)
    assert checked.returncode == 0 and "valid scenario, 5 stages" in checked.stdout
    default = cli("scenario", "show", "--preset", "default")
    assert default.stdout == cli("scenario", "show").stdout == preset_toml("default")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--preset", "chips"], ["--preset: unknown preset 'chips'", "choose from default,"]),
        (["--preset"], ["--preset", "expected one argument"]),
    ],
)
def test_cli_bad_preset_is_one_line_with_status_2(args, fragments):
    proc = cli("scenario", "show", *args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("invlend: error:"), proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
