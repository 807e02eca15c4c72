"""Run the Great Expectations suites stored as JSON under ``expectations/``.

Row-level failures are returned per row so that callers can quarantine exactly those rows
with the expectation's reason and fix (from the expectation's ``meta``).
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pandas as pd

from tasks.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
ROW_KEY = "_row"
VALIDATIONS = "validations"  # dataset of stored validation results
# Values longer than this are cut in stored results, so a 1 MB post does not bloat them.
_MAX_STORED_VALUE = 200


class DataQualityError(RuntimeError):
    """A critical expectation failed on data that should already be clean."""


@dataclass
class ExpectationFailure:
    """One failed expectation and the rows it failed on (empty for table-level checks)."""

    suite: str
    expectation: str
    column: str | None
    severity: str
    unexpected_count: int
    element_count: int
    rows: list[int]
    meta: dict[str, Any]

    def describe(self) -> str:
        target = f" on column '{self.column}'" if self.column else ""
        reason = self.meta.get("reason")
        detail = f" ({reason})" if reason else ""
        # Table-level expectations (distinct values, row counts) count no rows.
        counts = f" for {self.unexpected_count} of {self.element_count} rows" \
            if self.rows or self.unexpected_count else ""
        return f"suite '{self.suite}': {self.expectation}{target} failed{counts}{detail}"


@dataclass
class ValidationReport:
    """Outcome of one suite on one batch, with the failures and a JSON-ready summary."""

    suite: str
    success: bool
    failures: list[ExpectationFailure] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    html: str = ""

    def failures_by_row(self, severity: str = "critical") -> dict[int, list[ExpectationFailure]]:
        """Map each failing row key to the failures of ``severity`` it has."""
        by_row: dict[int, list[ExpectationFailure]] = defaultdict(list)
        for failure in self.failures:
            if failure.severity == severity:
                for row in failure.rows:
                    by_row[row].append(failure)
        return dict(by_row)

    def raise_for_critical_table_checks(self) -> None:
        """Raise DataQualityError for failed critical expectations that name no rows."""
        table = [f.describe() for f in self.failures if f.severity == "critical" and not f.rows]
        if table:
            raise DataQualityError("; ".join(table))

    def raise_for_critical(self) -> None:
        """Raise DataQualityError naming every failed critical expectation; log warnings."""
        for failure in self.failures:
            if failure.severity != "critical":
                log.warning("data-quality warning: %s", failure.describe())
        critical = [f.describe() for f in self.failures if f.severity == "critical"]
        if critical:
            raise DataQualityError("; ".join(critical))


@cache
def load_suite_config(name: str) -> dict[str, Any]:
    """Read suite ``name`` from ``expectations/<name>.json``."""
    path = EXPECTATIONS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"expectation suite {name!r} not found at {path}")
    return json.loads(path.read_text())


def validate_frame(
    frame: pd.DataFrame, suite_name: str, parameters: dict[str, Any] | None = None
) -> ValidationReport:
    """Validate ``frame`` with suite ``suite_name``; rows are keyed by their position."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    # GX logs every API registration at INFO on import; keep its warnings only.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    suite = context.suites.add(gx.ExpectationSuite(**load_suite_config(suite_name)))
    batch = (
        context.data_sources.add_pandas("pulse")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("whole")
    )
    definition = gx.ValidationDefinition(name=f"{suite_name}-check", data=batch, suite=suite)
    keyed = frame.reset_index(drop=True).assign(**{ROW_KEY: range(len(frame))})
    result = definition.run(
        batch_parameters={"dataframe": keyed},
        expectation_parameters=parameters or {},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_KEY]},
    )
    report = _build_report(suite_name, result)
    report.html = _render_html(result)
    log.info(
        "suite %s on %d rows: success=%s, %d failed expectations",
        suite_name, len(frame), report.success, len(report.failures),
    )
    return report


def _build_report(suite_name: str, result: Any) -> ValidationReport:
    failures = []
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        outcome = item.result or {}
        rows = [int(entry[ROW_KEY]) for entry in outcome.get("unexpected_index_list") or []]
        if item.exception_info and item.exception_info.get("raised_exception"):
            message = item.exception_info.get("exception_message")
            raise DataQualityError(f"suite '{suite_name}': {config.type} raised: {message}")
        failures.append(
            ExpectationFailure(
                suite=suite_name,
                expectation=config.type,
                column=config.kwargs.get("column"),
                severity=str(getattr(config.severity, "value", config.severity)),
                unexpected_count=int(outcome.get("unexpected_count") or len(rows)),
                element_count=int(outcome.get("element_count") or 0),
                rows=rows,
                meta=dict(config.meta or {}),
            )
        )
    return ValidationReport(
        suite=suite_name, success=bool(result.success), failures=failures,
        summary=_summarize(result.describe_dict()),
    )


def _summarize(described: dict[str, Any]) -> dict[str, Any]:
    """Drop per-row value lists from a GX result and cut long values, keeping counts."""
    for expectation in described.get("expectations", []):
        outcome = expectation.get("result", {})
        for key in ("unexpected_list", "unexpected_index_list", "unexpected_index_query"):
            outcome.pop(key, None)
        for key in ("partial_unexpected_list", "partial_unexpected_index_list",
                    "partial_unexpected_counts"):
            if key in outcome:
                outcome[key] = outcome[key][:10]
    return _shorten(json.loads(json.dumps(described, default=str)))


def _shorten(value: Any) -> Any:
    """Cut every string in a JSON-like value to _MAX_STORED_VALUE characters."""
    if isinstance(value, str) and len(value) > _MAX_STORED_VALUE:
        return value[:_MAX_STORED_VALUE] + f"… ({len(value)} characters)"
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    if isinstance(value, dict):
        return {key: _shorten(item) for key, item in value.items()}
    return value


def _render_html(result: Any) -> str:
    """Render the validation result with GX's own Data Docs renderer; empty if that fails."""
    try:
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView

        page = ValidationResultsPageRenderer().render(result)
        return DefaultJinjaPageView().render(page)
    except Exception as error:  # noqa: BLE001 - the HTML page is optional, the JSON is not
        log.warning("could not render Data Docs HTML: %s", error)
        return ""


def save_validation(store: Any, day: Any, report: ValidationReport) -> None:
    """Store a suite's result as JSON and as GX Data Docs HTML under ``validations/``."""
    from tasks import storage

    storage.write_json(store, storage.partition_key(VALIDATIONS, day, f"{report.suite}.json"),
                       report.summary)
    if report.html:
        store.write_bytes(storage.partition_key(VALIDATIONS, day, f"{report.suite}.html"),
                          report.html.encode())
