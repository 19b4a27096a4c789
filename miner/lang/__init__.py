"""The formula language: parse, print, canonical form, analysis (lookback, names) and evaluation."""

from miner.lang.analysis import history_rows, lookback, names, reads_intraday, size
from miner.lang.evaluator import Evaluator, evaluate
from miner.lang.nodes import Call, Name, Node, Num, format_number, walk
from miner.lang.parser import parse
from miner.lang.printer import canonical, canonicalize, to_string

__all__ = [
    "Call",
    "Evaluator",
    "Name",
    "Node",
    "Num",
    "canonical",
    "canonicalize",
    "evaluate",
    "format_number",
    "history_rows",
    "lookback",
    "names",
    "parse",
    "reads_intraday",
    "size",
    "to_string",
    "walk",
]
