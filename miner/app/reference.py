"""The operator reference, generated from the registry (for `miner operators` and the README)."""

from __future__ import annotations

from operators import Kind, Operator, operators_by_family

_PROBE = 1000
FAMILY_ORDER = ("elementwise", "timeseries", "regression", "quantile", "cross_section", "robust", "spectral")


def lookback_text(spec: Operator) -> str:
    """The lookback rule in words: `0`, `d` or `d - 1` (plus what the arguments need)."""
    literal_names = [a.name for a in spec.args if a.kind in (Kind.WINDOW, Kind.LAG)]
    probe = {a.name: float(a.default or _PROBE) for a in spec.args if a.is_literal}
    base = spec.lookback({**probe, **{n: float(_PROBE) for n in literal_names}})
    for name in literal_names:
        if base == _PROBE:
            return name
        if base == _PROBE - 1:
            return f"{name} - 1"
    return str(base)


def operator_rows() -> list[dict[str, str]]:
    rows = []
    families = operators_by_family()
    ordered = sorted(
        families, key=lambda f: FAMILY_ORDER.index(f) if f in FAMILY_ORDER else len(FAMILY_ORDER)
    )
    for family in ordered:
        specs = families[family]
        for spec in specs:
            usage = spec.signature
            if spec.infix is not None:
                usage += f"  [{spec.infix}]"
            rows.append(
                {"signature": usage, "family": family, "lookback": lookback_text(spec), "doc": spec.doc}
            )
    return rows


def operator_table_markdown(rows: list[dict[str, str]]) -> str:
    lines = ["| operator | family | lookback | meaning |", "|---|---|---|---|"]
    for row in rows:
        signature = row["signature"].replace("|", "\\|")
        doc = row["doc"].replace("|", "\\|")
        lines.append(f"| `{signature}` | {row['family']} | {row['lookback']} | {doc} |")
    return "\n".join(lines)
