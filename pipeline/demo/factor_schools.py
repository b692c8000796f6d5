"""Teacher and principal questionnaires of the demo round (issue 14; the design and the truth are
in :mod:`pipeline.demo.factors`).

Every frame school of the monitored grade gets a principal and 3–6 teachers — 1 or 2 (40 % / 60 %)
per subject of that year's rotation, the rest of 数学/语文/英语 up to 6 — so that the truth can be
computed over the whole sampling frame; ``pipeline.demo.generate`` keeps the sampled schools' rows
for the files. A teacher's latent is that of the school × subject,
``L = μ + ρ·u_js/σ_u + √(1 − ρ²)·z`` (other subjects: an independent draw in place of ``u``), and
each answer a ladder of ``X = L + η`` with the teacher's own ``η``; a principal's latent uses the
mean standardised school effect over the trait's planted subjects. 教龄 follows the teacher's age
(ID number). Streams: ``[seed, 12, year, county, grade]`` teachers, ``[seed, 13, …]`` principals,
``[seed, 12 | 13, 0]`` names and ID numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipeline import catalogue
from pipeline.demo.factors import (
    AFTER_SCHOOL,
    CURRICULUM,
    EDUCATION,
    EDUCATION_LEVELS,
    ITEMS,
    LESSONS,
    MAJOR,
    P_TEACHER_MISSING,
    PE_ART,
    PRINCIPAL_KEY,
    PRINCIPAL_TRAITS,
    TEACHER_KEY,
    TEACHER_TRAITS,
    TEACHERS_PER_SUBJECT,
    TRAINING_NOISE,
    TRAINING_SHIFT,
    TRAINING_SLOPE,
    Ladder,
    ScoreEffects,
    Trait,
    _after,
    _planted_subjects,
    _rng,
)

OTHER_SUBJECTS = ("math", "chinese", "english")

TEACHER_COLUMNS = (
    "year", "county_code", "school_id", "grade", "subject", "teacher_id", "name", "id_number",
    "education", "major_match", "years_teaching", "training_hours", "weekly_lessons",
    "method_1", "method_2", "method_3", "workload_1", "workload_2", "workload_3",
)  # fmt: skip
SURNAMES = "黄韦陆覃梁李莫蒙潘农陈刘林张周罗蓝卢廖唐杨谢吴邓何"
GIVEN = "建国红梅丽娟海燕志明秀英春华国强桂兰永红玉珍伟东晓玲文军美玲德荣"


def _frame_schools(effects: ScoreEffects) -> pd.DataFrame:
    """One row per year × county × grade × frame school: u/σ_u per subject (``u:<subject>``)."""
    f = effects.school_frame()
    keys = ["year", "county_code", "grade", "school_id"]
    wide = f.pivot_table(index=keys, columns="subject", values="u_std", sort=False)
    wide.columns = [f"u:{c}" for c in wide.columns]
    enrol = f.drop_duplicates(keys).set_index(keys)["grade_enrolment"]
    return wide.join(enrol).reset_index()


def _people(rng: np.random.Generator, region: np.ndarray, born: tuple[int, int]):
    """Synthetic names and 18-character ID numbers (GB 11643 check digit) of adults."""
    n = len(region)
    days = rng.integers(0, 365 * (born[1] - born[0]), n)
    birth = (np.datetime64(f"{born[0]}-01-01") + days.astype("timedelta64[D]")).astype(str)
    body = np.char.add(np.char.add(region.astype(str), np.char.replace(birth, "-", "")),
                       np.char.zfill(rng.integers(0, 1000, n).astype(str), 3))  # fmt: skip
    digits = np.frombuffer("".join(body).encode(), np.uint8).reshape(n, 17) - ord("0")
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    check = np.array(list("10X98765432"))[(digits @ weights) % 11]
    given = np.char.add(
        rng.choice(list(GIVEN), n), np.where(rng.random(n) < 0.7, rng.choice(list(GIVEN), n), "")
    )
    born_year = born[0] + days // 365  # approximately; enough for a plausible 教龄
    return np.char.add(rng.choice(list(SURNAMES), n), given), np.char.add(body, check), born_year


def _latent(
    t: Trait, role: str, jit: float, year: int, grade: int, u: np.ndarray, rng
) -> np.ndarray:
    rho = t.rho_for(role)
    z = rng.standard_normal(len(u))
    return t.mu(_after(year), grade, role, jit) + rho * u + math.sqrt(1 - rho**2) * z


def _maybe(rng, x: np.ndarray, p: float = P_TEACHER_MISSING) -> np.ndarray:
    x = np.asarray(x, float)
    return np.where(rng.random(len(x)) < p, np.nan, x)


def _noisy(latent: np.ndarray, lad: Ladder, rng: np.random.Generator) -> np.ndarray:
    """``X = L + η``: the latent with the answer's own noise."""
    return latent + rng.normal(0, lad.noise, len(latent))


def _bool(x: np.ndarray):
    return pd.array(np.where(np.isnan(x), None, x == 1), dtype="boolean")


def school_questionnaires(
    seed: int,
    effects: ScoreEffects,
    rotation: Mapping[int, Mapping[int, Sequence[str]]],
    roles: Mapping[str, str],
    jitter: Mapping[str, float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Teachers (3–6 per frame school × grade) and principals (one per frame school), canonical."""
    frame = _frame_schools(effects)
    t_parts, p_parts = [], []
    for (year, code, grade), f in frame.groupby(["year", "county_code", "grade"], sort=True):
        role, jit = roles[code], jitter[code]
        subjects = list(rotation[year][grade])
        n_j = len(f)
        u = f[[f"u:{s}" for s in subjects]].to_numpy()  # (schools, subjects)
        rng = _rng(seed, TEACHER_KEY, year, int(code), grade)
        counts = rng.choice([c for c, _ in TEACHERS_PER_SUBJECT], size=(n_j, len(subjects)),
                            p=[p for _, p in TEACHERS_PER_SUBJECT])  # fmt: skip
        others = [s for s in OTHER_SUBJECTS if s not in subjects]
        n_other = np.minimum(
            rng.integers(1, 3, n_j), np.minimum(6 - counts.sum(axis=1), len(others))
        )
        # one latent per school × subject group; other subjects' groups carry no school effect
        grp_school = np.concatenate(
            [np.repeat(np.arange(n_j), len(subjects)), np.repeat(np.arange(n_j), n_other)]
        )
        grp_subject = np.array(
            [
                *subjects * n_j,
                *[s for j in range(n_j) for s in rng.permutation(others)[: n_other[j]]],
            ],
            object,
        )
        grp_u = np.concatenate([u.ravel(), rng.standard_normal(int(n_other.sum()))])
        grp_n = np.concatenate([counts.ravel(), np.ones(int(n_other.sum()), int)])
        row_grp = np.repeat(np.arange(len(grp_n)), grp_n)
        row_grp = row_grp[np.argsort(grp_school[row_grp], kind="stable")]  # teachers by school
        n = len(row_grp)
        school = grp_school[row_grp]
        first = np.searchsorted(school, school, side="left")
        school_ids = f["school_id"].to_numpy()[school]
        cols: dict[str, Any] = {
            "year": np.full(n, year), "county_code": np.full(n, code), "school_id": school_ids,
            "grade": np.full(n, grade), "subject": grp_subject[row_grp],
            "teacher_id": np.char.add(school_ids.astype(str), np.char.zfill((np.arange(n) - first + 1).astype(str), 2)),
        }  # fmt: skip
        lat = {
            k: _latent(t, role, jit, year, grade, grp_u, rng)[row_grp]
            for k, t in TEACHER_TRAITS.items()
        }

        edu = _maybe(rng, EDUCATION.draw(_noisy(lat["t_degree"], EDUCATION, rng)))
        cols["education"] = np.where(
            np.isnan(edu),
            None,
            np.asarray(EDUCATION_LEVELS, object)[np.nan_to_num(edu).astype(int)],
        )
        cols["major_match"] = _bool(_maybe(rng, MAJOR.draw(_noisy(lat["t_major"], MAJOR, rng))))
        cols["years_teaching"] = _maybe(rng, np.zeros(n))  # blanks now, years from the age below
        raw = 72 * np.exp(
            TRAINING_SLOPE * (lat["t_training"] + rng.normal(0, TRAINING_NOISE, n) - TRAINING_SHIFT)
        )
        cols["training_hours"] = _maybe(rng, np.minimum(np.round(raw), 1000))
        cols["weekly_lessons"] = _maybe(rng, LESSONS.draw(_noisy(lat["t_lessons"], LESSONS, rng)))
        for k, idx in (("t_method", "method"), ("t_workload", "workload")):
            for name, lad in zip(catalogue.INDICES[idx].items, ITEMS[idx], strict=True):
                cols[name] = _maybe(rng, lad.draw(_noisy(lat[k], lad, rng)))
        t_parts.append(pd.DataFrame(cols))
        # principals
        rng = _rng(seed, PRINCIPAL_KEY, year, int(code), grade)
        # the principal's school effect: of the trait's planted subjects the grade takes (per trait)
        ucol = {s: i for i, s in enumerate(subjects)}
        pc: dict[str, Any] = {"year": np.full(n_j, year), "county_code": np.full(n_j, code),
                              "school_id": f["school_id"].to_numpy()}  # fmt: skip
        plat = {}
        for k, t in PRINCIPAL_TRAITS.items():
            planted = _planted_subjects(t, subjects)
            ubar = (u[:, [ucol[s] for s in planted]].sum(axis=1) / math.sqrt(len(planted))
                    if planted else rng.standard_normal(n_j))  # fmt: skip
            plat[k] = _latent(t, role, jit, year, grade, ubar, rng)
        for col, k, lad in (("curriculum_complete", "p_curriculum", CURRICULUM),
                            ("pe_art_staffed", "p_pe_art", PE_ART)):  # fmt: skip
            pc[col] = _bool(_maybe(rng, lad.draw(_noisy(plat[k], lad, rng))))
        for k, idx in (("p_facility", "facility_use"), ("p_home_school", "home_school")):
            for name, lad in zip(catalogue.INDICES[idx].items, ITEMS[idx], strict=True):
                pc[name] = _maybe(rng, lad.draw(_noisy(plat[k], lad, rng)))
        days = AFTER_SCHOOL.draw(plat["p_after_school"] + rng.normal(0, AFTER_SCHOOL.noise, n_j))
        pc["after_school_days"] = _maybe(rng, days)
        p_parts.append(pd.DataFrame(pc))
    teachers = pd.concat(t_parts, ignore_index=True)
    principals = pd.concat(p_parts, ignore_index=True)
    rng = _rng(seed, TEACHER_KEY, 0)
    teachers["name"], teachers["id_number"], born = _people(
        rng, teachers["county_code"].to_numpy(), (1965, 1998)
    )
    start = born + 20 + rng.integers(0, 4, len(teachers))  # started teaching at 20–23
    teachers["years_teaching"] += np.clip(teachers["year"].to_numpy() - start, 0, 45)
    rng = _rng(seed, PRINCIPAL_KEY, 0)
    principals["name"], principals["id_number"], _ = _people(
        rng, principals["county_code"].to_numpy(), (1963, 1985)
    )
    return teachers[list(TEACHER_COLUMNS)], principals


def sampled_only(students: pd.DataFrame, *frames: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """The rows of the sampled schools (those with students that year): what the files hold."""
    keys = set(zip(students["year"], students["school_id"], strict=True))
    return tuple(
        f[[k in keys for k in zip(f["year"], f["school_id"], strict=True)]].reset_index(drop=True)
        for f in frames
    )
