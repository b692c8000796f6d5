"""Constants and the typed ``validate:`` parameters shared by the validate modules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pipeline import schemas

TABLES = (
    "students", "scores", "schools", "county_reports", "previous_problems", "teachers", "principals",
)  # fmt: skip
QUESTIONNAIRES = ("teachers", "principals")  # linked to the students through (year, school_id)
REQUIRED_INPUTS = ("students", "schools")
TRACE = ("source_file", "source_row")
PCT_LEVEL_INDICATORS = tuple(f"pct_level_{lv}" for lv in schemas.LEVELS)
Severity = Literal["error", "warn"]

# ------------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidateParams:
    """The ``validate:`` section of ``params.yaml`` (each value's reason is commented there)."""

    min_schools_per_county_grade: int
    max_students_per_school: int
    quarantine_share_warn: float
    quarantine_share_error: float
    max_weight_sum_ratio: float
    level_pct_tolerance: float
    homework_minutes_range: tuple[float, float]
    sleep_hours_range: tuple[float, float]
    fitness_score_range: tuple[float, float]
    weight_ratio_max: float
    lost_share: float
    stray_county_max_rows: int
    cut_scores_mismatch_share: float
    cut_scores_min_rows: int
    severity: Mapping[str, Severity] = field(default_factory=dict)
    page_max_rows_per_rule: int = 200


DEFAULT_SEVERITY: dict[str, Severity] = {
    "few_schools": "warn",
    "too_many_students": "warn",
    "grade_stage_mismatch": "warn",
    "subject_not_in_rotation": "warn",
    "rotation_year_unknown": "warn",
    "quarantine_share": "warn",  # above quarantine_share_error it is always an error
    "weight_sum_ratio": "warn",
    "level_pct_sum": "error",
    "no_achievement_data": "error",
    "no_school_data": "warn",
    "no_scores": "warn",
    "ingest_counts_mismatch": "warn",
    "empty_file": "warn",
    "empty_table": "error",
    "rows_mostly_lost": "error",
    "county_lost": "error",
    "stray_county_rows": "warn",
    "year_lost": "error",
    "duplicate_identical": "warn",
    "school_county_conflict": "error",
    "cut_scores_mismatch": "error",
    "unlinked_questionnaire": "warn",
}

# the quarantine rule of a duplicated key whose valid copies differ (all of them are set aside)
DUPLICATE_RULES = {
    "students": "duplicate_student",
    "scores": "duplicate_score",
    "schools": "duplicate_school",
    "county_reports": "duplicate_report_row",
    "previous_problems": "duplicate_problem",
    "teachers": "duplicate_teacher",
    "principals": "duplicate_principal",
}

# ------------------------------------------------------------------------------------------------
# Rule catalogue: id -> what it means, in plain Chinese (shown on the page and in messages)
# ------------------------------------------------------------------------------------------------

ROW_RULES: dict[str, str] = schemas.VALIDATION_ROW_RULES
FINDING_RULES: dict[str, str] = schemas.VALIDATION_FINDING_RULES

STAGE_LABELS = {"ingest": "导入", "validate": "校验"}
