"""Parameters of the indicators stage (``indicators:`` in ``params.yaml``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

RESOURCE_KEYS = ("L1", "L2", "L3", "L4", "L5", "L6", "L7")

# 县域义务教育优质均衡发展督导评估办法 (教督〔2017〕6号), 资源配置 (7 indicators): primary / junior thresholds.
DEFAULT_RESOURCE_THRESHOLDS = {
    "primary": {"L1": 4.2, "L2": 1.0, "L3": 0.9, "L4": 4.5, "L5": 7.5, "L6": 2000.0, "L7": 2.3},
    "junior": {"L1": 5.3, "L2": 1.0, "L3": 0.9, "L4": 5.8, "L5": 10.2, "L6": 2500.0, "L7": 2.4},
}
DEFAULT_CV_THRESHOLDS = {"primary": 0.50, "junior": 0.45}  # same 办法: each indicator's 差异系数


@dataclass(frozen=True)
class IndicatorsParams:
    """Thresholds and method choices; each one's source is commented in ``params.yaml``."""

    ci_z: float = 1.96
    ci_reference: Literal["t_design_df", "normal"] = "t_design_df"
    percent_ci: Literal["logit", "wald"] = "logit"
    suppress_min_students: int = 10
    suppress_min_schools: int = 3
    icc_method: Literal["anova_icc1"] = "anova_icc1"
    icc_threshold: float = 0.15
    icc_ci: Literal["fisher_z", "wald"] = "fisher_z"
    achievement_rule: Literal["mean_vs_cuts", "share_good_or_above"] = "mean_vs_cuts"
    achievement_share_pct: float = 50.0
    homework_limit_minutes: Mapping[int, float] = field(default_factory=lambda: {4: 60.0, 8: 90.0})
    sleep_min_hours: Mapping[int, float] = field(default_factory=lambda: {4: 10.0, 8: 9.0})
    fitness_pass_score: float = 60.0
    resource_thresholds: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: DEFAULT_RESOURCE_THRESHOLDS
    )
    cv_thresholds: Mapping[str, float] = field(default_factory=lambda: DEFAULT_CV_THRESHOLDS)
    teaching_point_min_enrollment: float = 50.0
    school_min_met: int = 6
    school_min_ratio_unmet: float = 0.85
    cv_min_coverage: float = 0.9
    factor_standards: Mapping[str, float] = field(
        default_factory=lambda: {
            "exercise_minutes": 60.0, "reading_minutes": 30.0, "training_hours": 72.0,
            "after_school_days": 5.0,
        }
    )  # fmt: skip
    factor_index_min_items_share: float = 0.5

    def __post_init__(self) -> None:
        from pipeline.errors import EqmError

        def bad(key: str, what: str) -> EqmError:
            return EqmError(
                f"参数 indicators.{key} {what}。",
                file="params.yaml",
                hint="请对照 params.yaml 中的注释修改。",
            )

        if not self.ci_z > 0:
            raise bad("ci_z", "应为正数")
        if self.ci_reference not in ("t_design_df", "normal"):
            raise bad("ci_reference", "应为 t_design_df 或 normal")
        if self.percent_ci not in ("logit", "wald"):
            raise bad("percent_ci", "应为 logit 或 wald")
        if self.icc_ci not in ("fisher_z", "wald"):
            raise bad("icc_ci", "应为 fisher_z 或 wald")
        if self.suppress_min_students < 1 or self.suppress_min_schools < 1:
            raise bad("suppress_min_students / suppress_min_schools", "应为正整数")
        if not 0 < self.achievement_share_pct <= 100:
            raise bad("achievement_share_pct", "应在 0 到 100 之间")
        for stage in ("primary", "junior"):
            if stage not in self.resource_thresholds:
                raise bad("resource_thresholds", f"缺少学段 {stage}")
            missing = [k for k in RESOURCE_KEYS if k not in self.resource_thresholds[stage]]
            if missing:
                raise bad(f"resource_thresholds.{stage}", f"缺少 {', '.join(missing)}")
            if any(v <= 0 for v in self.resource_thresholds[stage].values()):
                raise bad(f"resource_thresholds.{stage}", "的标准值应为正数")
            if stage not in self.cv_thresholds:
                raise bad("cv_thresholds", f"缺少学段 {stage}")
        if not 1 <= self.school_min_met <= 7:
            raise bad("school_min_met", "应在 1 到 7 之间")
        if not 0 < self.school_min_ratio_unmet <= 1:
            raise bad("school_min_ratio_unmet", "应在 0 到 1 之间")
        if not 0 < self.cv_min_coverage <= 1:
            raise bad("cv_min_coverage", "应在 0 到 1 之间")
        if not 0 < self.factor_index_min_items_share <= 1:
            raise bad("factor_index_min_items_share", "应在 0 到 1 之间")
        from pipeline.catalogue import FACTORS

        needed = sorted({f.threshold for f in FACTORS.values() if f.threshold})
        missing = [k for k in needed if k not in self.factor_standards]
        if missing:
            raise bad("factor_standards", f"缺少 {', '.join(missing)}")
