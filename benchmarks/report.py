"""``docs/performance.md`` from the measurements of ``bench_engine.py``.

The prose lives in ``performance.md.in`` next to this file; every number on the page comes
from the run, and each target's verdict is decided here from the measured value.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import bench_scaling

TEMPLATE = Path(__file__).with_name("performance.md.in")
DEFAULT = "default (5 stages, monthly, 5 y)"
LONG = "five-stage monthly 10 y"
#: Label of each workload's value-blind twin (beta 0, no runway multiplier).
BETA0 = "at beta 0"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _scaling_table(data: dict) -> str:
    by = {(r["threads"], r["firms"]): r for r in data["rows"]}
    ag = {r["firms"]: r for r in data["aggregates"]}
    cols = [f"{t} thread{'s' if t > 1 else ''}" for t in bench_scaling.THREADS]
    lines = [
        "| firm-paths | "
        + " | ".join(f"{c}: first call | {c}: repeated" for c in cols)
        + ' | 2 threads, keep="aggregates": first call | 2 threads / 1 thread (repeated) |',
        "|---:|" + "---:|---:|" * len(cols) + "---:|---:|",
    ]
    for n in data["sizes"]:
        cells = []
        for t in bench_scaling.THREADS:
            r = by[(t, n)]
            cells.append(f"{1e9 * r['first'] / n:.0f} | {1e9 * r['seconds'] / n:.0f}")
        a = f"{1e9 * ag[n]['first'] / n:.0f}" if n in ag else ""
        speedup = by[(1, n)]["seconds"] / by[(2, n)]["seconds"]
        lines.append(f"| {n:,} | " + " | ".join(cells) + f" | {a} | {speedup:.2f}x |")
    return "\n".join(lines)


def _memory_table(data: dict) -> str:
    rows = [r for r in data["rows"] if r["threads"] == max(bench_scaling.THREADS)]
    ag = {r["firms"]: r for r in data["aggregates"]}
    lines = [
        '| firm-paths | keep="firms": peak RSS (MiB) | above start-up, bytes per firm-path '
        '| keep="aggregates": peak RSS (MiB) |',
        "|---:|---:|---:|---:|",
    ]
    for r in rows:
        a = ag.get(r["firms"])
        above = (r["peak_rss"] - r["base_rss"]) / r["firms"]
        lines.append(
            f"| {r['firms']:,} | {r['peak_rss'] / 2**20:.0f} | {above:.0f} | "
            + (f"{a['peak_rss'] / 2**20:.0f} |" if a else "|")
        )
    return "\n".join(lines)


def page(tp_text: str, ratios: dict, splits: dict, measures: dict, scaling: dict,
         startup: dict, machine: str, args) -> str:  # fmt: skip
    d, t = ratios[DEFAULT], ratios.get(LONG, ratios[DEFAULT])
    sp = splits[DEFAULT]
    rows2 = [r for r in scaling["rows"] if r["threads"] == max(bench_scaling.THREADS)]
    big = [r for r in rows2 if r["firms"] >= 300_000]
    big = big if len(big) >= 2 else rows2  # the line through the large runs, if there are two
    slope, _ = bench_scaling.memory_slope(big)
    n_struct = rows2[0]["structures"]
    per_struct = slope / n_struct
    ag = scaling["aggregates"]
    ag_slope = bench_scaling.memory_slope(ag)[0] if len(ag) >= 2 else float("nan")
    by = {(r["threads"], r["firms"]): r for r in scaling["rows"]}
    sizes = scaling["sizes"]
    ns = {th: [1e9 * by[(th, n)]["seconds"] / n for n in sizes] for th in bench_scaling.THREADS}
    amortised = [i for i, n in enumerate(sizes) if n >= 100_000] or list(range(len(sizes)))
    ns_range = {th: [ns[th][i] for i in amortised] for th in bench_scaling.THREADS}
    top = by[(max(bench_scaling.THREADS), sizes[-1])]
    top_ag = {r["firms"]: r for r in ag}.get(sizes[-1], top)
    mid = [n for n in sizes if 100_000 <= n <= 1_000_000]
    flat = {th: max(ns[th][sizes.index(n)] for n in mid) / min(ns[th][sizes.index(n)] for n in mid)
            for th in bench_scaling.THREADS}  # fmt: skip
    f = startup["first"]
    demo = startup["demo_s"]
    imp = startup["import_s"]
    demo_text = "failed to run" if demo is None else f"{demo:.1f} s"
    beta0 = f"cpu / cpu {BETA0}"
    blind = {k: r["cpu / RNG bound"] / r[beta0] for k, r in ((DEFAULT, d), (LONG, t))}
    ok = dict(
        numpy=min(d["cpu / numpy"], t["cpu / numpy"]) >= 10,
        value=min(d[beta0], t[beta0]) >= 0.45,
        # Both workloads must pass: a noisy repeat of the bound can flatter one of them.
        bound=min(blind.values()) >= 0.7,
        evaluate=d["evaluate / simulate"] <= 0.25,
        memory=per_struct <= 100,
        imp=imp < 1.0,
        demo=demo is not None and demo < 30,
        measures=measures["ratio"] <= 2.0,
    )
    mq = {k: measures[f"ns {k} risk_neutral"] / measures[f"ns {k} real_world"]
          for k in ("beta 3", BETA0)}  # fmt: skip
    targets = [
        ("firm simulation >= 10x the `numpy` backend",
         f"{d['cpu / numpy']:.1f}x (10 y: {t['cpu / numpy']:.1f}x)", ok["numpy"]),
        ("value-driven default (beta 3, runways) >= 0.45x the same engine at beta 0",
         f"{d[beta0]:.2f}x (10 y: {t[beta0]:.2f}x)", ok["value"]),
        ("firm simulation at beta 0 >= 70% of the RNG bound",
         f"{100 * blind[DEFAULT]:.0f}% (10 y: {100 * blind[LONG]:.0f}%)", ok["bound"]),
        ("evaluating the 3 default structures <= 25% of simulating the firms",
         f"{100 * d['evaluate / simulate']:.0f}% of one simulation (10 y: "
         f"{100 * t['evaluate / simulate']:.0f}%)", ok["evaluate"]),
        ("peak memory linear in firm-paths, <= 100 bytes per firm-path per structure kept",
         f"{per_struct:.0f} bytes ({slope:.0f} per firm-path, {n_struct} structures)",
         ok["memory"]),
        ("both measures (fair value and risk) <= 2x the real-world measure alone, end to end",
         f"{measures['ratio']:.2f}x ({measures['both_s']:.2f} s against "
         f"{measures['real_world_s']:.2f} s)", ok["measures"]),
        ("`import invlend` < 1 s", f"{imp:.2f} s", ok["imp"]),
        ("`make demo` < 30 s with a warm cache", demo_text, ok["demo"]),
    ]  # fmt: skip
    target_table = "\n".join(
        ["| target (2-core machine) | measured | verdict |", "|---|---|---|"]
        + [f"| {a} | {b} | {_verdict(c)} |" for a, b, c in targets]
    )
    values = dict(
        date=datetime.date.today().isoformat(),
        targets=target_table,
        firms=f"{args.firms:,}",
        numpy_firms=f"{args.numpy_firms:,}",
        repeat=args.repeat,
        throughput=tp_text,
        scaling=_scaling_table(scaling),
        memory=_memory_table(scaling),
        base_mib=f"{rows2[0]['base_rss'] / 2**20:.0f}",
        import_s=f"{imp:.2f} s",
        cold=f"{f['cold']:.1f} s",
        warm=f"{f['warm']:.2f} s",
        call=f"{f['run']:.3f} s",
        compile=f"{f['compile']:.0f} s",
        load=f"{f['load']:.2f} s",
        demo=demo_text,
        heavy=", ".join(f"{name} {sec:.2f} s" for name, sec in startup["import_top"]),
        v_numpy=_verdict(ok["numpy"]),
        v_bound=_verdict(ok["bound"]),
        v_value=_verdict(ok["value"]),
        cpu_beta0=f"{d[beta0]:.2f}x",
        cpu_beta0_long=f"{t[beta0]:.2f}x",
        blind_bound=f"{100 * blind[DEFAULT]:.0f}%",
        blind_bound_long=f"{100 * blind[LONG]:.0f}%",
        v_evaluate=_verdict(ok["evaluate"]),
        v_memory=_verdict(ok["memory"]),
        v_import=_verdict(ok["imp"]),
        v_demo=_verdict(ok["demo"]),
        v_measures=_verdict(ok["measures"]),
        measures_ratio=f"{measures['ratio']:.2f}x",
        measures_n=f"{measures['n_portfolios']:,}",
        q_ratio=f"{mq['beta 3']:.2f}x",
        q_ratio_beta0=f"{mq[BETA0]:.2f}x",
        q_ns=f"{measures['ns beta 3 risk_neutral']:.1f}",
        p_ns=f"{measures['ns beta 3 real_world']:.1f}",
        q_ns_beta0=f"{measures[f'ns {BETA0} risk_neutral']:.1f}",
        p_ns_beta0=f"{measures[f'ns {BETA0} real_world']:.1f}",
        cpu_numpy=f"{d['cpu / numpy']:.1f}x",
        cpu_bound=f"{100 * d['cpu / RNG bound']:.0f}%",
        cpu_bound_long=f"{100 * t['cpu / RNG bound']:.0f}%",
        cpu_bound_cpu=f"{100 * d['cpu / RNG bound (CPU time)']:.0f}%",
        cpu_fixed=f"{sp['cpu_fixed_ns']:.0f}",
        cpu_step=f"{sp['cpu_step_ns']:.2f}",
        bound_fixed=f"{sp['bound_fixed_ns']:.0f}",
        bound_step=f"{sp['bound_step_ns']:.2f}",
        steps_per_firm=f"{sp['steps_per_firm']:.0f}",
        eval_share=f"{100 * d['evaluate / simulate']:.0f}%",
        eval_share_run=f"{100 * d['evaluate / simulate'] / 2:.0f}%",
        per_struct=f"{per_struct:.0f}",
        slope=f"{slope:.0f}",
        ag_slope=f"{ag_slope:.1f}",
        ns1=f"{min(ns_range[1]):.0f}-{max(ns_range[1]):.0f}",
        ns2=f"{min(ns_range[2]):.0f}-{max(ns_range[2]):.0f}",
        amortised_lo=f"{sizes[amortised[0]]:,}",
        mid_lo=f"{min(mid):,}",
        mid_hi=f"{max(mid):,}",
        flat1=f"{100 * (flat[1] - 1):.0f}%",
        flat2=f"{100 * (flat[2] - 1):.0f}%",
        speedup=f"{sum(ns[1]) / sum(ns[2]):.1f}",
        top_n=f"{sizes[-1]:,}",
        top_first=f"{1e9 * top['first'] / sizes[-1]:.0f}",
        top_again=f"{1e9 * top['seconds'] / sizes[-1]:.0f}",
        top_ag=f"{1e9 * top_ag['first'] / sizes[-1]:.0f}",
        machine=machine,
    )
    return TEMPLATE.read_text().format(**values)
