"""The benchmark scenarios, in the order they run; each has `run(context) -> list[Result]`."""

from bench.scenarios import api, chart, imports, ledger_view, report, settlement, single_events, summary

SCENARIOS = {
    "import": imports,
    "single": single_events,
    "summary": summary,
    "report": report,
    "ledger": ledger_view,
    "chart": chart,
    "settlement": settlement,
    "api": api,
}
