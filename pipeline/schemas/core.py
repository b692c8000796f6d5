"""Column and Table: the records every table declaration of :mod:`pipeline.schemas` uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DType = Literal["int", "float", "str", "bool", "category"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    label: str  # Chinese label shown to users (reports, validation pages, error messages)
    aliases: tuple[str, ...] = ()
    required: bool = False
    unit: str | None = None
    pii: bool = False  # dropped (or pseudonymised) at ingest, never written
    min: float | None = None  # hard plausible range (validation); None = unbounded
    max: float | None = None
    description: str = ""
    pseudonymised: bool = False  # a pii id kept only as its salted hash (student_id, teacher_id)
    answers: str | None = None  # a 4-point questionnaire item: its LIKERT_ANSWERS format

    @property
    def display(self) -> str:
        """``学生权重 (weight)``: the Chinese label with the canonical name, for messages."""
        return f"{self.label}（{self.name}）"

    @property
    def dropped(self) -> bool:
        """PII that ingest drops unread (name, ID number); a pseudonymised id is kept, hashed."""
        return self.pii and not self.pseudonymised


@dataclass(frozen=True)
class Table:
    name: str
    label: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[Column]:
        return [c for c in self.columns if c.required]


def _c(name, dtype, label, *aliases, **kw) -> Column:
    return Column(name=name, dtype=dtype, label=label, aliases=tuple(aliases), **kw)


def _items(name: str, label: str, n: int, answers: str, *more: str) -> tuple[Column, ...]:
    """Items ``name_1 … name_n`` of a 4-point scale (1–4), headed 学习兴趣1 / 学习兴趣_1 /
    学习兴趣第1题 (and ``more``, formatted with ``k``); ``answers``: a LIKERT_ANSWERS format."""
    return tuple(
        _c(f"{name}_{k}", "float", f"{label}{k}", f"{label}{k}", f"{label}_{k}", f"{label}第{k}题",
           *(m.format(k=k) for m in more), min=1, max=4, answers=answers)
        for k in range(1, n + 1)
    )  # fmt: skip
