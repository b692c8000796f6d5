"""Collecting a round's files: ``eqm init`` (a new round's folder), ``eqm templates`` (forms) and
``eqm check`` (one arriving file's verdict).

The city office gathers each round's files from the counties. ``eqm init DIR`` makes the round's
project folder (params.yaml with its comments, the data/raw/ folders with a guide each, an example
sources.yaml, .gitignore and a README with the DVC note): :mod:`pipeline.collect.scaffold`.
``eqm templates`` writes one Excel fill-in workbook per raw table, whose headers ingest reads with
no alias: :mod:`pipeline.collect.workbooks`. What each form column means lives in
:mod:`pipeline.collect.guide`. ``eqm check FILE…`` says, the moment a file arrives, which table
it is, which of its rows the round would set aside and why, and returns the sender's workbook with
the problem cells marked and a summary in Chinese: :mod:`pipeline.collect.check` (imported by the
command only, not here).
"""

from __future__ import annotations

from pipeline.collect.scaffold import init_round
from pipeline.collect.workbooks import write_templates

__all__ = ["init_round", "write_templates"]
