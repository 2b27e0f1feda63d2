"""Bar charts of a benchmark run: req/s per server per scenario, the targets marked.

Reads the ``results.json`` that ``bench/run.py`` writes (in ``bench/results/<timestamp>/``,
or wherever ``--json`` put it) and draws one SVG with a panel per scenario:

* load scenarios: median req/s per server (horizontal bars), the min-max of the rounds as
  whiskers; a target (greenserve at least N x a peer, or N % of the ideal rate) is a dashed
  mark across the bar it applies to, and that bar is green when the target is met, orange
  when it is not; a sleep scenario also shows its ideal rate;
* memory: KB of worker RSS per idle connection (steady; the peak as a hollow marker),
  with the 10 KB target.

Several files may be given: a later file's scenarios replace an earlier one's (e.g. a full
run, then a re-run of the ASGI scenarios alone). The SVG keeps its text as text and has
no timestamp or random ids, so it diffs well in git.

Usage: python bench/plot.py RESULTS.json [MORE.json ...] [-o docs/_static/benchmarks.svg]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

#: Panel order.
ORDER = ("hello", "sleep", "asgi-hello", "asgi-sleep", "memory")
GREENSERVE = {"greenserve", "greenserve-h11", "greenserve-uvloop"}
COLORS = {
    "met": "#3a9a4a",
    "missed": "#e08a1e",
    "greenserve": "#3a9a4a",
    "peer": "#7f8fa6",
    "floor": "#c7ced9",
}

PEER_SHORT = {
    "gunicorn-gevent": "gunicorn -k gevent",
    "uvicorn": "uvicorn",
    "floor": "the floor",
}


def merge(payloads: list[dict]) -> tuple[dict[str, dict], dict]:
    """Scenario results (a later payload's scenario wins) and the last payload's metadata."""
    results: dict[str, dict] = {}
    meta: dict[str, Any] = {}
    for payload in payloads:
        for scen, res in payload.get("results", {}).items():
            if res:
                results[scen] = res
        meta = payload
    return results, meta


def _median(r: dict | None) -> float | None:
    return r.get("median_rps") if r and r.get("status") == "ok" else None


def _load_panel(ax, scen: str, res: dict, results: dict) -> None:
    scenario = run.SCENARIOS[scen]
    names = [n for n in scenario.servers if n in res]
    ys = list(range(len(names)))[::-1]  # first server on top
    medians = [_median(res[n]) for n in names]
    # The target that applies to each server, and whether it is met.
    marks: dict[str, tuple[float, str, bool]] = {}
    for t in run.TARGETS:
        if t.scenario != scen or t.server not in res:
            continue
        if t.ref is None:
            base, what = scenario.ideal, f"{100 * t.factor:g}% of ideal"
        else:
            base, what = (
                _median(results.get(scen, {}).get(t.ref)),
                f"{t.factor:g}x {PEER_SHORT.get(t.ref, t.ref)}",
            )
        if base is None:
            continue
        value = _median(res[t.server])
        goal = t.factor * base
        met = value is not None and round(value / base, 2 if t.ref else 3) >= t.factor
        marks[t.server] = (goal, f"target >= {what}" + (" (for information)" if t.informative else ""), met)
    top = max([m for m in medians if m] + [g for g, _, _ in marks.values()] + [scenario.ideal or 0] + [1])
    for y, name, median in zip(ys, names, medians, strict=True):
        r = res[name]
        if median is None:
            note = r.get("status", "NA")
            ax.text(top * 0.01, y, f"NA: {r.get('note', note)[:70]}", va="center", fontsize=8, color="#a33")
            continue
        if name in marks:
            color = COLORS["met"] if marks[name][2] else COLORS["missed"]
        elif name in GREENSERVE:
            color = COLORS["greenserve"]
        else:
            color = COLORS["floor"] if name == "floor" else COLORS["peer"]
        lo, hi = r.get("min_rps", median), r.get("max_rps", median)
        ax.barh(
            y,
            median,
            height=0.62,
            color=color,
            xerr=[[median - lo], [hi - median]],
            error_kw={"ecolor": "#333", "elinewidth": 0.8, "capsize": 2.5},
        )
        text = f"{median:,.0f}"
        if scenario.ideal:
            text += f" ({100 * median / scenario.ideal:.0f}%)"
        if name in marks:
            goal, label, met = marks[name]
            verdict = "met" if met else "NOT met"
            text += f"\n{label} = {goal:,.0f}: {verdict}"
            ax.plot([goal, goal], [y - 0.42, y + 0.42], color="#111", linestyle="--", linewidth=1.4)
            if not met:  # the missing part, as an outline up to the target
                ax.barh(
                    y,
                    goal - median,
                    left=median,
                    height=0.62,
                    fill=False,
                    edgecolor=COLORS["missed"],
                    linestyle=":",
                    linewidth=0.9,
                )
        ax.text(
            max(hi, marks.get(name, (0,))[0]) + top * 0.012,
            y,
            text,
            va="center",
            fontsize=7.5,
            linespacing=1.5,
        )
    if scenario.ideal:
        ax.axvline(scenario.ideal, color="#555", linestyle=":", linewidth=1)
        ax.text(
            scenario.ideal,
            ys[0] + 0.62,
            f"ideal {scenario.ideal:,.0f}",
            fontsize=7,
            ha="right",
            va="bottom",
            color="#555",
        )
    ax.set_yticks(ys, [scenario.label(n) for n in names], fontsize=8)
    ax.set_xlim(0, top * 1.4)
    ax.set_ylim(-0.6, len(names) - 0.1)
    ax.set_xlabel("requests per second (median; whiskers: min-max of the rounds)", fontsize=8)
    ax.xaxis.set_major_formatter(_thousands())
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(f"{scen}: {scenario.title}", fontsize=9.5, loc="left")


def _memory_panel(ax, res: dict) -> None:
    scenario = run.SCENARIOS["memory"]
    names = [n for n in scenario.servers if n in res and res[n].get("kb_per_conn") is not None]
    ys = list(range(len(names)))[::-1]
    top = run.MEMORY_TARGET_KB
    for y, name in zip(ys, names, strict=True):
        r = res[name]
        steady, peak = r["kb_per_conn"], r.get("kb_per_conn_peak")
        top = max(top, steady, peak or 0)
        if name == "greenserve":
            color = COLORS["met"] if round(steady, 2) <= run.MEMORY_TARGET_KB else COLORS["missed"]
        else:
            color = COLORS["greenserve"] if name in GREENSERVE else COLORS["peer"]
        ax.barh(y, steady, height=0.62, color=color)
        text = f"{steady:.1f} KB"
        if peak is not None and abs(peak - steady) > 0.05:
            ax.plot([peak], [y], marker="D", markerfacecolor="none", markeredgecolor="#333", markersize=5)
            text += f" (peak {peak:.1f})"
        ax.text(max(steady, peak or 0) + 0.25, y, text, va="center", fontsize=8)
    if "greenserve" in names:
        y = ys[names.index("greenserve")]
        goal = run.MEMORY_TARGET_KB
        ax.plot([goal, goal], [y - 0.42, y + 0.42], color="#111", linestyle="--", linewidth=1.4)
        ax.text(goal, y - 0.47, f"target <= {goal:g} KB ", fontsize=7, ha="right", va="top")
    ax.set_yticks(ys, [scenario.label(n) for n in names], fontsize=8)
    ax.set_xlim(0, top * 1.3)
    ax.set_ylim(-0.6, len(names) - 0.1)
    ax.set_xlabel("KB of worker RSS per idle keep-alive connection (bar: steady; diamond: peak)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(f"memory: {scenario.title}", fontsize=9.5, loc="left")


def _thousands():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: f"{x:,.0f}")


def draw(payloads: list[dict], out: Path) -> Path:
    """Draw the panels of every scenario present into ``out`` (SVG, PNG, ... by its suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results, meta = merge(payloads)
    panels = [s for s in ORDER if results.get(s)]
    if not panels:
        raise SystemExit("no scenario results to plot")
    rows = [max(1, len(results[s])) for s in panels]
    with plt.rc_context(
        {
            "svg.fonttype": "none",  # text stays text: small, searchable, diffable
            "svg.hashsalt": "greenserve-bench",  # stable ids across runs
            "font.family": "sans-serif",
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        fig, axes = plt.subplots(
            len(panels),
            1,
            figsize=(10, 0.42 * sum(rows) + 1.15 * len(panels) + 0.6),
            gridspec_kw={"height_ratios": [r + 1.6 for r in rows]},
            squeeze=False,
        )
        for ax, scen in zip(axes[:, 0], panels, strict=True):
            if scen == "memory":
                _memory_panel(ax, results[scen])
            else:
                _load_panel(ax, scen, results[scen], results)
        machine = meta.get("machine", {})
        started = (meta.get("started") or "")[:16].replace("T", " ")
        cpu = f"{machine.get('cpu', '?')}, {machine.get('nproc', '?')} cores"
        foot = (
            f"{started}  |  {cpu}; server pinned to one core, "
            f"wrk -t1 on the other  |  greenserve {machine.get('greenserve commit', '?')}  |  "
            f"green: greenserve (target met), orange: target not met, grey: peers"
        )
        fig.text(0.01, 0.004, foot, fontsize=6.5, color="#555", ha="left", va="bottom")
        fig.tight_layout(rect=(0, 0.015, 1, 1), h_pad=1.6)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, metadata={"Date": None} if out.suffix == ".svg" else None)
        plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", type=Path, help="results.json written by bench/run.py")
    p.add_argument("-o", "--output", type=Path, default=Path("docs/_static/benchmarks.svg"))
    args = p.parse_args(argv)
    payloads = [json.loads(path.read_text()) for path in args.results]
    print(f"wrote {draw(payloads, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
