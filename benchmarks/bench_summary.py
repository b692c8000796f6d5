"""Print the speed targets of the issue next to the figures measured by ``make bench``.

    .venv/bin/python benchmarks/bench_summary.py [RESULTS_DIR]

Reads the JSON files the benchmark scripts wrote into ``RESULTS_DIR`` (default
``benchmarks/_data/results``: ``startup.json``, ``demo_round.json``, ``indicators.json``,
``factors.json``, ``province_run.json``, ``validate.json``, ``ingest.json`` and, from
``make bench-r``,
``indicators_r.json``) and prints one Markdown table: item, target, measured, verdict. Times are
the best of the runs with the median in brackets (wall clock), the CPU time (user + system, with
the worker processes) beside it where measured; a target counts as met when the median meets it,
"best run only" when only the best run does. A file that is missing is reported as not
measured.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / "_data" / "results"
STAGES = ("ingest", "validate", "indicators", "evidence", "report")


def _load(directory: Path, name: str) -> dict | None:
    path = directory / f"{name}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["_measured"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    return data


def _s(best: float, median: float | None = None, unit: str = "s") -> str:
    if median is None or abs(median - best) < 0.005:
        return f"{best:.2f} {unit}"
    return f"{best:.2f} {unit}（中位 {median:.2f}）"


def _cpu(v: dict | None) -> str:
    """The CPU time (user + system, the process and its workers) beside a wall time."""
    return f"；CPU {v['best']:.1f} s" if v else ""


def _verdict(best: float, median: float | None, limit: float, below: bool = True) -> str:
    ok = (lambda v: v < limit) if below else (lambda v: v >= limit)
    if ok(median if median is not None else best):
        return "达标"
    return "仅最好一次达标" if ok(best) else "未达标"


def rows(d: Path) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    missing = "未测"

    st = _load(d, "startup")
    if st:
        h = st["eqm_help_s"]
        out.append(("`eqm --help`（整个进程）", "< 0.5 s", _s(h["best"], h["median"]),
                    _verdict(h["best"], h["median"], 0.5)))  # fmt: skip
        nb = st["modules_without_bytecode"]
        env = "（本机设了 PYTHONDONTWRITEBYTECODE）" if st.get("environment") else ""
        out.append((
            "启动时要编译的模块（make install 之后）",
            "0",
            f"依赖包 {nb['third_party']} 个；本项目 pipeline/ {nb['project']} 个{env}",
            "达标" if nb["third_party"] == 0 and nb["project"] == 0 else
            ("依赖包达标；本项目模块每次启动编译" if nb["third_party"] == 0 else "未达标"),
        ))  # fmt: skip
        imp = st["import_s"]
        worst = max(imp, key=lambda k: imp[k]["best_s"])
        out.append((
            "导入各环节模块（`import pipeline.<环节>`）",
            "只导入本环节用到的",
            "；".join(f"{k} {v['best_s']:.2f}" for k, v in imp.items()) + " s",
            f"最慢 {worst}",
        ))  # fmt: skip
    else:
        out.append(("`eqm --help`", "< 0.5 s", missing, "—"))

    demo = _load(d, "demo_round")
    if demo:
        starts = demo.get("stage_start_s", {})
        if starts:
            worst = max(starts, key=lambda k: starts[k]["median"])
            w = starts[worst]
            out.append((
                "每条命令启动（从启动到开始工作，演示数据）",
                "< 1 s",
                f"最慢 {worst} " + _s(w["best"], w["median"]),
                _verdict(w["best"], w["median"], 1.0),
            ))  # fmt: skip
        targets = {"ingest": 10.0, "report": 8.0}
        cpu = demo.get("stage_process_cpu_s", {})
        for stage in STAGES:
            v = demo["stage_process_s"][stage]
            limit = targets.get(stage)
            out.append((
                f"`eqm {stage}`，演示数据（整个进程）",
                f"< {limit:g} s" if limit else "—",
                _s(v["best"], v["median"]) + _cpu(cpu.get(stage)),
                _verdict(v["best"], v["median"], limit) if limit else "仅测量",
            ))  # fmt: skip
        r = demo["eqm_run_process_s"]
        out.append(("`eqm run`，演示数据（整个进程，五个环节）", "< 15 s",
                    _s(r["best"], r["median"]) + _cpu(demo.get("eqm_run_process_cpu_s")),
                    _verdict(r["best"], r["median"], 15.0)))  # fmt: skip
        if "load_average_1min_max" in demo:
            out.append(("测时机器的负载（1 分钟平均，最高）", "—",
                        f"{demo['load_average_1min_max']:.2f}（{demo['cpus']} 核）", "仅记录"))  # fmt: skip
        sp = demo["validate_split_s"]
        w, g = sp["work_s"], sp["import_gx_s"]
        out.append((
            "`eqm validate` 导入 Great Expectations 之外的工作，演示数据",
            "< 2 s",
            _s(w["best"], w["median"]) + f"；导入 GX {_s(g['best'], g['median'])}",
            _verdict(w["best"], w["median"], 2.0),
        ))  # fmt: skip
        n = demo.get("gx_imports_per_eqm_run")
        out.append(("一次 `eqm run` 导入 Great Expectations 的次数", "1", str(n),
                    "达标" if n == 1 else "未达标"))  # fmt: skip
    else:
        out.append(("演示数据各环节与 `eqm run`", "< 15 s", missing, "—"))

    ind = _load(d, "indicators")
    if ind:
        b, m = ind["eqm_indicators_process_s"], ind.get("eqm_indicators_process_median_s")
        out.append((
            f"`eqm indicators`，{ind['students']:,} 名学生、{ind['counties']} 县（整个进程）",
            "< 5 s",
            _s(b, m) + f"；进程内计算 {ind['in_process_compute_s']:.2f} s",
            _verdict(b, m, 5.0),
        ))  # fmt: skip
        p = ind["peak_rss_gb"]
        out.append(("同上，内存峰值", "< 2 GB", f"{p:.2f} GB", _verdict(p, None, 2.0)))
    else:
        out.append(("`eqm indicators`，100 万名学生", "< 5 s，< 2 GB", missing, "—"))

    fac = _load(d, "factors")
    if fac:
        out.append((
            f"相关因素（`factor_estimates` 进程内），{fac['students']:,} 名学生、{fac['counties']} 县、"
            f"{fac['factors']} 个因素",
            "测量",
            f"{fac['seconds']:.2f} s，内存峰值 {fac['peak_rss_gb']:.2f} GB",
            "仅测量",
        ))  # fmt: skip

    prov = _load(d, "province_run")
    if prov:
        split = "，".join(f"{k} {v:.0f}" for k, v in prov["stage_s"].items())
        out.append((
            f"`eqm run`，{prov['students']:,} 名学生、{prov['counties']} 县（parquet 导入到报告）",
            "测量",
            f"{prov['eqm_run_process_s']:.0f} s（{split} s），内存峰值 {prov['peak_rss_gb']:.2f} GB",
            "仅测量",
        ))  # fmt: skip
    else:
        out.append(("`eqm run`，100 万名学生", "测量", missing, "—"))

    val = _load(d, "validate")
    if val:
        out.append((
            f"校验核心，{val['students']:,} 名学生（进程内，含导入 GX）",
            "< 10 s",
            f"{val['total_s']:.2f} s（导入 GX {val['import_gx_s']:.2f} s）",
            _verdict(val["total_s"], None, 10.0),
        ))  # fmt: skip
    ing = _load(d, "ingest")
    if ing:
        for label, v in ing.items():
            if label.startswith("_"):
                continue
            what = "演示数据" if label == "demo round" else label.replace("synthetic", "合成数据")
            out.append((
                f"导入核心（进程内），{what.replace(' students', ' 名学生')}，{v['files']} 个文件",
                "—",
                f"{v['ingest_s']:.2f} s",
                "仅测量",
            ))  # fmt: skip

    r = _load(d, "indicators_r")
    if r:
        out.append((
            f"对比 R survey：{r['students']:,} 名学生，`eqm indicators` 整个进程 vs R 仅估计",
            ">= 10 倍",
            f"{r['process_speedup']:.0f} 倍（R {r['r_svyby_estimation_s']:.1f} s，eqm "
            f"{r['eqm_indicators_process_s']:.2f} s；{r['_measured']} 测）",
            _verdict(r["process_speedup"], None, 10.0, below=False),
        ))  # fmt: skip
    else:
        out.append(("对比 R survey（`make bench-r`，需要 R）", ">= 10 倍", "未测", "—"))
    return out


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    table = rows(directory)
    print()
    print(f"## 速度目标与实测（{os.cpu_count()} 核；1 分钟负载 {os.getloadavg()[0]:.1f}）")
    print()
    print("| 项目 | 目标 | 实测 | 结论 |")
    print("|---|---|---|---|")
    for item in table:
        print("| " + " | ".join(item) + " |")


if __name__ == "__main__":
    main()
