"""Column metadata, declared once (PUDL's ``fields.py`` idea).

Every canonical table's columns — type, unit, Chinese label, Chinese/English aliases accepted at
ingest, whether required, whether PII — and the code lists (性别, 城乡类型, 学科, 水平, 学段 …) live
here. Ingest uses the aliases and code maps, validate builds its expectation suites from the types
and ranges, and reports take their Chinese labels from here.

Users may add aliases without touching code: ``data/raw/sources.yaml`` ``aliases:`` (see ingest).

Split along its concerns: :mod:`.core` (Column, Table), :mod:`.codes` (code lists, problem-list
vocabulary), :mod:`.inputs` (raw tables), :mod:`.outputs` (stage outputs), :mod:`.rules` (quality
rule labels). Everything is re-exported here: ``schemas.STUDENTS``, ``schemas.GENDER_CODES`` ….
"""

from pipeline.schemas.codes import *  # noqa: F403
from pipeline.schemas.core import *  # noqa: F403
from pipeline.schemas.core import _c, _items  # noqa: F401
from pipeline.schemas.inputs import *  # noqa: F403
from pipeline.schemas.outputs import *  # noqa: F403
from pipeline.schemas.rules import *  # noqa: F403
