"""Quality rules: id -> what it means, in plain Chinese."""

from __future__ import annotations

# ------------------------------------------------------------------------------------------------
# Quality rules: id -> what it means, in plain Chinese (validation pages, reports, messages)
# ------------------------------------------------------------------------------------------------

INGEST_RULES: dict[str, str] = {
    "ingest.bad_year": "监测年份无法识别",
    "ingest.missing_value": "必填项为空",
    "ingest.not_a_number": "应为数字的单元格不是数字",
    "ingest.split_enrollment": "一贯制学校各学段在校生数缺失或为 0，无法按学段拆分",
    "ingest.unknown_code": "代码无法识别（如性别、城乡类型、学科、水平）",
    "ingest.unknown_county": "区县名称或代码无法识别",
    "ingest.error_value": "单元格为 Excel 错误值（#N/A、#VALUE!、#REF!、#DIV/0! 等）",
    "ingest.formula_no_value": "公式没有保存计算结果（请在 Excel 中打开并保存后再发送）",
    "ingest.bad_student_id": "学生编号格式不符（如科学计数法 1.23E+17 或带小数点，已被 Excel 改动）",
    "ingest.bad_teacher_id": "教师编号格式不符（如科学计数法 1.23E+17 或带小数点，已被 Excel 改动）",
    "ingest.bad_answer": "问卷题目的作答无法识别（应为 1–4 或问卷的作答文字）",
    "ingest.county_mismatch": "区县代码与区县名称指向不同的区县",
    "ingest.id_number_in_field": "身份证号出现在非个人信息列中（已隐去，该行未导入）",
}

VALIDATION_ROW_RULES: dict[str, str] = {
    "missing_value": "必填项为空",
    "out_of_range": "数值超出允许范围",
    "invalid_code": "代码不在允许的取值中",
    "missing_student_id": "缺少学生编号",
    "duplicate_student": "同一年份学生编号重复且内容不同（各副本均已隔离，无法判断哪一行正确）",
    "grade_invalid": "年级不是 4 或 8",
    "weight_invalid": "学生权重缺失、不大于 0、不是有限数或大于 2 亿",
    "county_unknown": "区县代码不在 params.yaml 的 monitoring.counties 中",
    "missing_school_id": "缺少学校编号",
    "homework_out_of_range": "每天书面作业时间超出合理范围",
    "sleep_out_of_range": "每天睡眠时间超出合理范围",
    "fitness_out_of_range": "体质健康总分超出合理范围",
    "duplicate_score": "同一学生同一学科的成绩重复且内容不同（各副本均已隔离）",
    "score_out_of_range": "量尺分数超出该年份、学科、年级的合理范围",
    "score_missing": "成绩行没有分数，也没有水平",
    "level_inconsistent": "水平与量尺分数、划界分数不一致",
    "student_unknown": "学生数据中没有这名学生（同一年份、学生编号）",
    "student_quarantined": "这名学生的学生数据行已被隔离，其成绩一并隔离",
    "duplicate_school": "同一年份同一学校同一学段重复且内容不同（各副本均已隔离）",
    "resource_negative": "办学条件数值为负数",
    "enrollment_not_positive": "纳入均衡评估的学校在校生数缺失或不大于 0",
    "duplicate_report_row": "区县报告中同一指标同一组别重复且内容不同（各副本均已隔离）",
    "pct_out_of_range": "百分比不在 0–100 之间",
    "duplicate_problem": "问题编号重复且内容不同（各副本均已隔离）",
    "duplicate_teacher": "同一年份教师编号重复且内容不同（各副本均已隔离）",
    "duplicate_principal": "同一年份同一学校的校长问卷重复且内容不同（各副本均已隔离）",
    "duplicate_identical": "与另一行完全相同的重复行（保留一行，其余隔离）",
    "weight_implausible": "学生权重与同一区县同一年级的权重中位数相差过大",
    "school_county_mismatch": "区县与其学校所属区县不一致",
}

VALIDATION_FINDING_RULES: dict[str, str] = {
    "few_schools": "样本学校过少",
    "too_many_students": "单校样本学生过多",
    "grade_stage_mismatch": "年级与学校学段不符",
    "subject_not_in_rotation": "学科不在当年国家监测轮次中",
    "rotation_year_unknown": "params.yaml 未给出该年份的监测学科轮次",
    "quarantine_share": "区县被隔离数据比例过高",
    "weight_sum_ratio": "同一区县各校权重和差异过大",
    "level_pct_sum": "各水平百分比之和不等于 100",
    "no_achievement_data": "没有可用的学业成绩数据",
    "no_school_data": "没有可用的学校办学条件数据",
    "no_scores": "有学生数据但没有成绩数据",
    "ingest_counts_mismatch": "导入清单的行数与隔离记录不一致",
    "empty_file": "文件没有数据行",
    "empty_table": "数据表没有任何数据行",
    "rows_mostly_lost": "大部分数据被隔离",
    "county_lost": "区县的数据全部被隔离",
    "stray_county_rows": "少数行的区县不是已登记的区县（疑似填错，已隔离）",
    "year_lost": "某年份的数据全部被隔离",
    "duplicate_identical": "完全相同的重复行（保留一行）",
    "school_county_conflict": "同一学校出现在不同区县",
    "cut_scores_mismatch": "划界分数与数据中的水平不符",
    "unlinked_questionnaire": "教师或校长问卷的学校不在本轮学生数据和学校数据中（保留，但关联不到学生）",
}


def rule_label(rule: str) -> str:
    """Chinese description of a quarantine rule id; several ids joined by ';' are each translated."""
    labels = {**INGEST_RULES, **VALIDATION_ROW_RULES, **VALIDATION_FINDING_RULES}
    parts = [r.strip() for r in str(rule).split(";") if r.strip()]
    return "；".join(labels.get(r, labels.get(r.removeprefix("validate."), r)) for r in parts)
