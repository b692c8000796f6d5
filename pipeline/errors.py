"""The one exception type a user may see.

Every failure a person can act on (a bad file, a missing column, a failed quality gate) is raised as
:class:`EqmError` with a message in Simplified Chinese that names the file, the row and the column
where it can, and says what to do. The CLI prints the message and exits non-zero; anything else is
an internal error whose traceback goes to the log file, never to the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EqmError(Exception):
    """A failure the user can fix.

    Parameters
    ----------
    message:
        What went wrong, in Chinese, ideally ending with what to do about it.
    file, row, column:
        Where it went wrong: ``row`` is the row number as the user sees it in the source file
        (Excel's row number, or the 1-based line number in a CSV including the header).
    hint:
        What to do (appended as "处理建议").
    """

    message: str
    file: str | None = None
    row: int | None = None
    column: str | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"文件 {self.file}")
        if self.row is not None:
            where.append(f"第 {self.row} 行")
        if self.column:
            where.append(f"列「{self.column}」")
        text = ("，".join(where) + "：" if where else "") + self.message
        if self.hint:
            text += f"\n处理建议：{self.hint}"
        return text
