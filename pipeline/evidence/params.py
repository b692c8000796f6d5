"""Typed parameters of the evidence stage (``params.yaml`` ``evidence:``, plus the standards that
live in other sections and are handed in by :func:`pipeline.evidence.stage_params`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.errors import EqmError

# Candidate rules (one test or verdict each) and the problem rule they belong to. The three
# achievement measures of one county x grade x subject are one deficit: one ACH problem.
BURDEN_RULES = ("HOMEWORK", "SLEEP", "MYOPIA", "FITNESS")
ACH_MEASURES = ("LEVEL", "MEAN", "MEDIUM")
CANDIDATE_RULES = ("ICC", *ACH_MEASURES, "GAP", *BURDEN_RULES, "RES", "SCHOOL")
PROBLEM_RULE_ORDER = ("ICC", "ACH", "GAP", *BURDEN_RULES, "RES", "SCHOOL")
# scale-free statistics: never a linking error (domain notes, "Trend across cycles")
SCALE_FREE = (
    "school_difference_rate", "eta_squared", "school_mean_cv", "school_compliance",
    "L1", "L2", "L3", "L4", "L5", "L6", "L7",  # 差异系数 of the resource indicators
)  # fmt: skip


@dataclass(frozen=True)
class Units:
    lead: str
    support: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One problem rule: Chinese title templates, domain and responsible units."""

    title: str  # str.format template of a problem (fields listed in params.yaml)
    domain: str
    units: Units
    resolved: str = ""  # title of a close-out (建议销号): the object now meets its standard
    target: str = ""  # 整改目标: the measurable target of the ledger, filled with the numbers
    suggestion: str = ""  # 整改建议: a concrete suggestion, filled with the numbers
    units_by_indicator: Mapping[str, Units] = field(default_factory=dict)
    indicator: str = ""  # the indicator the rule tests (burden rules)
    title_missing: str = ""  # RES / SCHOOL: title when the census data are incomplete
    title_reversed: str = ""  # GAP: the county gap has the opposite sign of the national gap
    measures: Mapping[str, str] = field(default_factory=dict)  # ACH: fragment per measure


@dataclass(frozen=True)
class Severity:
    effect_sd_high: float  # |gap| / SD at or above -> 高
    effect_sd_medium: float  # -> 中, else 低
    pct_points_high: float  # percent-point gap at or above -> 高
    pct_points_medium: float
    res_cv_excess_high: float  # CV - threshold at or above -> 高, else 中
    # school items: 高 when the lowest unmet indicator is below this share of its standard or at
    # least school_unmet_high indicators are unmet; 中 when an unmet one is below the regulation's
    # 85%; 低 when the school fails only by the count (every unmet one at 85% or more)
    school_ratio_high: float
    school_unmet_high: int


@dataclass(frozen=True)
class EvidenceParams:
    alpha: float
    icc_threshold: float
    icc_requires_significance: bool
    level_min: float
    benchmark_scopes: tuple[str, ...]
    scale_sd: float
    sd_indicator: str
    effect_size_sd: float
    gap_vars: tuple[str, ...]
    # groupings with no disadvantaged side (gender): a reversed gap is a finding (two-sided test)
    gap_reversal_vars: tuple[str, ...]
    ci_z: float
    burden_limits: Mapping[str, Mapping[int, float]]  # indicator -> grade -> ceiling / floor (%)
    severity: Severity
    rules: Mapping[str, Rule]
    # subject -> indicator -> linking error (indicator units) of a comparison across rounds on the
    # same scale; 0 where not given; never for scale-free statistics
    linking_error: Mapping[str, Mapping[str, float]]
    census_change_tolerance: float  # census values (no SE): smaller changes count as unchanged
    deadline_placeholder: str
    closeout_suggestion: str  # 整改建议 of a close-out (建议销号)
    previous_title_suffix: str  # appended to the title of a problem not re-measured this round
    # reference distribution of the rule tests: Student t with the design df, or normal
    p_reference: str = "t_design_df"
    # a percent indicator with no SE (official county-report value) is a problem when it is at
    # least this many percentage points worse than its benchmark
    no_se_margin_pct_points: float = 5.0
    # handed in from the indicators section (declared once there): school standards by stage
    resource_thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    school_min_ratio_unmet: float = 0.85

    def __post_init__(self) -> None:
        if self.p_reference not in ("t_design_df", "normal"):
            raise EqmError(
                f"参数 evidence.p_reference 应为 t_design_df 或 normal，而不是 {self.p_reference}。",
                file="params.yaml",
            )
        if not 0 < self.alpha < 1:
            raise EqmError("参数 evidence.alpha 应在 0 与 1 之间。", file="params.yaml")
        missing = [r for r in PROBLEM_RULE_ORDER if r not in self.rules]
        if missing:
            raise EqmError(
                f"参数 evidence.rules 缺少规则：{', '.join(missing)}。", file="params.yaml"
            )
        unknown = sorted(set(self.rules) - set(PROBLEM_RULE_ORDER))
        if unknown:
            raise EqmError(
                f"参数 evidence.rules 含未知规则：{', '.join(unknown)}"
                f"（允许：{', '.join(PROBLEM_RULE_ORDER)}）。",
                file="params.yaml",
            )
        lacking = [m for m in ACH_MEASURES if m not in self.rules["ACH"].measures]
        if lacking:
            raise EqmError(
                f"参数 evidence.rules.ACH.measures 缺少：{', '.join(lacking)}。",
                file="params.yaml",
            )
        for subject, per in self.linking_error.items():
            bad = sorted(set(per) & set(SCALE_FREE))
            if bad:
                raise EqmError(
                    f"参数 evidence.linking_error.{subject}.{bad[0]} 不应设置：校际差异率等无量纲"
                    "统计量不受量尺链接影响，没有链接误差。",
                    file="params.yaml",
                )

    def link_error(self, subject: str, indicator: str) -> float:
        """Linking error of ``indicator`` on ``subject``'s scale (0 when not configured)."""
        if indicator in SCALE_FREE:
            return 0.0
        return float(self.linking_error.get(subject, {}).get(indicator, 0.0))
