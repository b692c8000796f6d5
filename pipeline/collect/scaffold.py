"""``eqm init DIR``: the folder of a new monitoring round, ready for the counties' files.

Writes ``params.yaml`` (the packaged defaults with their comments, :data:`DEFAULT_PARAMS`, a copy of
the repository's ``params.yaml`` that a test keeps equal to it), ``README.md`` (the steps of a
round and a note on DVC), ``.gitignore`` (raw data, results and the salt ``.eqm_salt``),
``data/raw/<table>/README.md`` for every raw table and ``ledger/``, and ``data/raw/sources.yaml``
as a fully commented example (nothing active). ``--year`` and ``--counties`` are written into
params.yaml by editing its text lines, so every comment survives: the counties become this round's
``monitoring.counties`` (their names from the default table) and ``demo.counties`` (so ``eqm
demo-data`` works in the folder); a year missing from ``monitoring.rotation`` gets a placeholder
line to fill in. Nothing is overwritten: a file that exists already stops the command.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.collect.guide import folder_readmes
from pipeline.config import INIT_MARKER, PARAMS_FILE
from pipeline.errors import EqmError
from pipeline.io import dump_json, outputs

log = logging.getLogger(__name__)

DEFAULT_PARAMS = Path(__file__).with_name("default_params.yaml")
YEAR_RANGE = (2015, 2100)  # schemas.YEAR's plausible range


@dataclass(frozen=True)
class CountyChoice:
    code: str
    name: str | None  # None: not in the default table (a placeholder name is written)


def default_params_text() -> str:
    return DEFAULT_PARAMS.read_text(encoding="utf-8")


def parse_counties(
    spec: str, counties: Mapping[str, str], aliases: Mapping[str, str]
) -> list[CountyChoice]:
    """``"450107,上林县 横州市"`` -> the chosen counties, in the default table's order.

    Codes and names (current or former, ``county_aliases``) of the default table are accepted; a
    6-digit code outside it is kept with a placeholder name (a warning says to fill it in);
    anything else is an error.
    """
    by_name = {str(n): str(c) for c, n in counties.items()} | {
        str(n): str(c) for n, c in aliases.items()
    }
    chosen: dict[str, CountyChoice] = {}
    tokens = [t for t in re.split(r"[,，、;；\s]+", spec) if t]
    if not tokens:
        raise EqmError(
            "--counties 为空。",
            hint="请写区县代码或名称，用逗号分隔，如 --counties 450107,450125。",
        )
    for t in tokens:
        if t in counties:
            chosen[t] = CountyChoice(t, str(counties[t]))
        elif t in by_name:
            code = by_name[t]
            chosen[code] = CountyChoice(code, str(counties.get(code, t)))
        elif re.fullmatch(r"[0-9]{6}", t):
            chosen[t] = CountyChoice(t, None)
        else:
            known = "、".join(f"{c} {n}" for c, n in counties.items())
            raise EqmError(
                f"--counties 中的「{t}」既不是 6 位区县代码，也不是默认区县表中的区县名称。",
                hint=f"默认区县表：{known}。",
            )
    order = {str(c): i for i, c in enumerate(counties)}
    return sorted(chosen.values(), key=lambda c: (order.get(c.code, len(order)), c.code))


# ------------------------------------------------------------------------------------------------
# params.yaml: text edits that keep every comment
# ------------------------------------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], section: str, key: str) -> tuple[int, int]:
    """(index of ``  key:`` inside top-level ``section:``, index after its nested lines)."""
    in_section = False
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_]\w*:", line):
            in_section = line.startswith(f"{section}:")
        elif in_section and line.startswith(f"  {key}:"):
            end = i + 1
            while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > 2):
                end += 1
            while end > i + 1 and not lines[end - 1].strip():  # trailing blank lines
                end -= 1
            return i, end
    raise RuntimeError(f"default params.yaml has no {section}.{key}")


def round_params(text: str, year: int | None, counties: Sequence[CountyChoice] | None) -> str:
    """The default params.yaml ``text`` with this round's year and counties (pure).

    Only lines change; the result is checked to load to the defaults with exactly these changes.
    """
    lines = text.splitlines()
    notes = []
    if counties:
        start, end = _block(lines, "monitoring", "counties")
        entry = re.compile(r'^ {4}"?([0-9]{6})"?\s*:')
        kept = {m.group(1): ln for ln in lines[start + 1 : end] if (m := entry.match(ln))}
        new = [
            kept.get(c.code)
            or (f'    "{c.code}": {c.name}' if c.name else None)
            or f'    "{c.code}": "{c.code}"   # 默认区县表中没有这个代码：请把引号中的代码改成区县名称'
            for c in counties
        ]
        others = [ln for ln in lines[start + 1 : end] if not entry.match(ln)]
        lines[start + 1 : end] = others + new
        start, end = _block(lines, "demo", "counties")
        codes = ", ".join(f'"{c.code}"' for c in counties)
        lines[start] = re.sub(r"\[.*?\]", f"[{codes}]", lines[start], count=1)
        notes.append("区县 " + "、".join(c.name or c.code for c in counties))
    if year is not None:
        start, end = _block(lines, "monitoring", "rotation")
        years = {
            int(m.group(1))
            for ln in lines[start + 1 : end]
            if (m := re.match(r"^ {4}(\d{4}):", ln))
        }
        if year not in years:
            lines.insert(
                end,
                f"    # {year}: {{4: [...], 8: [...]}}   # 本轮的监测学科：请按国家义务教育质量监测方案"
                "填写后去掉行首的 #",
            )
        notes.insert(0, f"{year} 年监测")
    if notes:
        head = next(i for i, ln in enumerate(lines) if not ln.startswith("#"))
        lines.insert(head, f"# 本轮（eqm init 生成）：{'；'.join(notes)}。")
    out = "\n".join(lines) + "\n"
    _check_round_params(text, out, counties)
    return out


def _check_round_params(default: str, out: str, counties: Sequence[CountyChoice] | None) -> None:
    expected: dict[str, Any] = yaml.safe_load(default)
    if counties:
        expected["monitoring"]["counties"] = {c.code: c.name or c.code for c in counties}
        expected["demo"]["counties"] = [c.code for c in counties]
    got = yaml.safe_load(out)
    if got != expected:  # the default file's layout changed under the line edits
        raise RuntimeError("eqm init: edited params.yaml does not load to the expected values")


# ------------------------------------------------------------------------------------------------
# The other files of a round folder
# ------------------------------------------------------------------------------------------------

GITIGNORE = """\
# 原始数据含学生个人信息，不进 git：用 DVC 管理（见 README.md）
/data/raw/
# 可由 eqm run 重新生成的结果
/data/processed/
/reports/
/data/eqm.log
/data/.eqm.lock
# eqm check 退回给报送单位的工作簿是对方的原文件（含学生信息），不进 git
/checks/
# 学生编号的假名化盐值：只留在本机，绝不提交（各轮请使用同一个盐）
.eqm_salt
"""


def sources_example(year: int | None) -> str:
    """``data/raw/sources.yaml``: every line a comment; uncommented it is a valid sources file."""
    y = year or 2025
    return f"""\
## data/raw/sources.yaml：说明个别原始文件的读法（可选）。
## 多数文件不需要在这里说明：编码、分隔符、表头行都会自动识别，eqm templates 生成的模板的
## 列名也能直接识别。需要说明时，去掉相应行首的「# 」使其生效（缩进用空格，保持对齐）。
#
# dataset:                      # 原样写入 ingest_manifest.json，报告据此标注数据来源
#   label: {y}年南宁市义务教育质量监测（区县上报）
#   synthetic: false
# aliases:                      # 对所有文件生效：文件中的列名 -> 标准列名（见 pipeline/schemas/inputs.py）
#   抽样权重: weight
# files:                        # 键为相对 data/raw 的路径
#   students/西乡塘区{y}.csv:
#     encoding: gbk             # 不填则自动识别
#     delimiter: comma          # 分隔符：comma、tab、semicolon、pipe；不填则自动识别
#     year: {y}                # 文件没有监测年份列时使用
#     county_code: "450107"     # 文件没有区县列时使用
#   schools/{y}年办学条件.xlsx:
#     sheet: 数据               # 工作表名称，或从 1 开始的序号
#     header_row: 3             # 表头所在行，与 Excel 行号一致
#     aliases: {{仪器设备总值(元): equipment_value_yuan}}
"""


def round_readme(year: int | None, counties: Sequence[CountyChoice] | None) -> str:
    title = f"{year} 年义务教育质量监测" if year else "一轮义务教育质量监测"
    who = (
        "本轮区县："
        + "、".join(f"{c.name or '（请在 params.yaml 中填写名称）'}（{c.code}）" for c in counties)
        + "。\n\n"
        if counties
        else ""
    )
    return f"""\
# {title}（eqm 项目目录）

本目录由 `eqm init` 生成，存放这一轮监测的参数、区县报来的原始数据和 eqm 的全部结果。{who}\
## 步骤

1. 核对 `params.yaml`：`monitoring.counties`（本轮区县）、`monitoring.rotation`（本轮监测学科）、
   `monitoring.scales`（按国家监测报告填写各学科、年级的分界分数；默认值仅为示意）。
2. 生成填写模板发给区县：`eqm templates --root 本目录`，模板在 `templates/` 下，每张表一个工作簿，
   含「填写说明」、下拉列表和数值检查。
3. 收回的文件按表放入 `data/raw/` 的子文件夹（每个文件夹中的 README.md 说明放什么、列名和格式）。
4. 运行 `eqm run --root 本目录`：结果在 `data/processed/`，报告在 `reports/<年>/`。
   校验页 `reports/<年>/validation.html` 列出被剔除的行及原因，改正原始文件后重新运行即可。

想先试一试：在尚未放入数据时运行 `eqm demo-data --root 本目录`，生成合成演示数据（已有真实数据时它会
拒绝运行）；试完请用新目录放真实数据。

## 隐私

姓名、身份证号不要放入（即使放入也会在读取时删除）。学生编号和教师编号在导入时换成加盐哈希，盐保存在本目录
的 `.eqm_salt`（或环境变量 `EQM_SALT`），不进 git；同一地区各轮请使用同一个盐。

## 用 DVC 保存原始数据

`data/raw/` 已写入 `.gitignore`，不进 git。要让一年后能原样重跑本轮，用 DVC 保存原始数据，副本放在
单位内部的文件夹或共享盘：

```bash
git init && dvc init
dvc add data/raw
dvc remote add -d office /path/to/内网共享盘/eqm-dvc
dvc push
git add . && git commit -m "{f"{year}年" if year else "本轮"}监测原始数据"
```

重跑时 `git clone` 本目录的仓库、`dvc pull` 取回原始数据，再 `eqm run --root .`；请同时保留当时的
`.eqm_salt`。
"""


def scaffold(
    year: int | None = None, counties: Sequence[CountyChoice] | None = None
) -> dict[str, str]:
    """Every file of a new round folder: relative path -> text (pure)."""
    files = {
        PARAMS_FILE: round_params(default_params_text(), year, counties),
        "README.md": round_readme(year, counties),
        ".gitignore": GITIGNORE,
        "data/raw/sources.yaml": sources_example(year),
    }
    files.update({f"data/raw/{rel}": text for rel, text in folder_readmes().items()})
    raw_files = {
        rel.removeprefix("data/raw/"): hashlib.sha256(text.encode("utf-8")).hexdigest()
        for rel, text in files.items()
        if rel.startswith("data/raw/")
    }
    # `eqm demo-data` may replace these (README.md files it keeps) while they are unchanged
    files[f"data/raw/{INIT_MARKER}"] = (
        dump_json({"generator": "eqm init", "files": raw_files}) + "\n"
    )
    return files


def init_round(directory: Path, year: int | None = None, counties: str | None = None) -> list[Path]:
    """``eqm init``: write the new round folder ``directory``; refuses to overwrite anything."""
    directory = Path(directory)
    if year is not None and not YEAR_RANGE[0] <= year <= YEAR_RANGE[1]:
        raise EqmError(
            f"--year {year} 不是有效的监测年份（应在 {YEAR_RANGE[0]}–{YEAR_RANGE[1]} 之间）。"
        )
    chosen = None
    defaults = yaml.safe_load(default_params_text())["monitoring"]
    if counties is not None:
        chosen = parse_counties(counties, defaults["counties"], defaults["county_aliases"])
        for c in chosen:
            if c.name is None:
                log.warning(
                    "区县代码 %s 不在默认区县表中：已写入 params.yaml，请在 monitoring.counties 中填写它的名称",
                    c.code,
                )
    if directory.exists() and not directory.is_dir():
        raise EqmError(f"{directory} 已存在且不是文件夹。", hint="请换一个目录名。")
    files = scaffold(year, chosen)
    existing = [rel for rel in files if (directory / rel).exists()]
    if existing:
        listing = "、".join(existing[:5]) + (" 等" if len(existing) > 5 else "")
        raise EqmError(
            f"目录中已有 {listing}，看来已经是一轮监测的项目目录；为避免覆盖，未写入任何文件。",
            file=str(directory / existing[0]),
            hint="新一轮请用一个新的（或空的）目录；要在已有目录中重新生成，请先移走这些文件。",
        )
    with outputs() as out:
        for rel, text in files.items():
            out.text(text, directory / rel)
    log.info(
        "已创建一轮监测的项目目录 %s：params.yaml、README.md、.gitignore、data/raw/ 下 %d 个文件夹"
        "（各有 README.md）和 sources.yaml 示例",
        directory,
        len(folder_readmes()),
    )
    if year is not None and year not in defaults["rotation"]:
        log.warning(
            "params.yaml 的 monitoring.rotation 中没有 %d 年的监测学科：已留下一行示例，请按国家监测方案填写",
            year,
        )
    log.info("下一步：核对 params.yaml，用 eqm templates --root %s 生成填写模板", directory)
    return [directory / rel for rel in files]
