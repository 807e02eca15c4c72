"""The GX suites under expectations/ load, pass on good data and fail with names and counts."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tasks.validate.suites import EXPECTATIONS_DIR, DataQualityError, validate_frame

SUITES = sorted(path.stem for path in EXPECTATIONS_DIR.glob("*.json"))


def test_expected_suites_exist():
    assert {"raw_posts", "clean_posts", "labels", "scores"} <= set(SUITES)


@pytest.mark.parametrize("name", SUITES)
def test_suite_json_names_itself(name):
    suite = json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text())
    assert suite["name"] == name
    assert suite["expectations"]


def _clean_posts(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "id": ["a", "b"], "text": ["first post", "second post"], "lang": ["en", "en"],
        "created_at": ["2026-12-04T00:00:00Z"] * 2, "author": [None, None],
        "source": ["f.jsonl"] * 2, "line": [1, 2],
    })
    return frame.assign(**overrides)


def test_clean_suite_passes_good_posts():
    report = validate_frame(_clean_posts(), "clean_posts")
    assert report.success


def test_critical_failure_names_suite_and_counts():
    report = validate_frame(_clean_posts(id=["a", "a"]), "clean_posts")
    with pytest.raises(DataQualityError) as error:
        report.raise_for_critical()
    assert "clean_posts" in str(error.value)
    assert "expect_column_values_to_be_unique" in str(error.value)
    assert "2 of 2 rows" in str(error.value)


def test_warning_does_not_raise(caplog):
    report = validate_frame(_clean_posts(text=["same", "same"]), "clean_posts")
    report.raise_for_critical()
    assert any("data-quality warning" in message for message in caplog.messages)


def test_unmasked_email_fails_clean_suite():
    report = validate_frame(_clean_posts(text=["write to a@b.com", "ok"]), "clean_posts")
    failed = {failure.expectation for failure in report.failures}
    assert "expect_column_values_to_not_match_regex" in failed


def test_summary_cuts_long_values():
    report = validate_frame(pd.DataFrame({
        "id": ["x"], "text": ["y" * 50_000], "created_at": ["2026-12-04"],
        "parse_error": [None],
    }), "raw_posts", {"max_post_chars": 100})
    assert len(json.dumps(report.summary)) < 20_000
    assert report.failures_by_row() != {}


def test_html_report_rendered():
    report = validate_frame(_clean_posts(), "clean_posts")
    assert "<html" in report.html.lower()
