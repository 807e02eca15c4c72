"""Exact and near-duplicate detection, within a day and across days."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from tasks import jobs, storage
from tasks.clean.dedup import DuplicateIndex, jaccard, shingles
from tasks.clean.text import normalize_text
from tasks.collect import stage

BASE = "Flight delayed again at JFK, third time this month. So annoyed #travel"


def _posts(*texts: str) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"p{i}" for i in range(len(texts))], "text": list(texts)})


def test_near_duplicate_found():
    index = DuplicateIndex()
    index.add("a", BASE, index.sketch(BASE))
    variant = BASE.replace("So annoyed", "So so annoyed!!") + " http"
    match = index.find(variant, index.sketch(variant))
    assert match is not None
    assert match[0] == "a"
    assert "near duplicate" in match[1]


def test_distinct_post_kept():
    index = DuplicateIndex()
    index.add("a", BASE, index.sketch(BASE))
    other = "Flight on time at JFK for once, smooth boarding and friendly crew"
    assert index.find(other, index.sketch(other)) is None


def test_retweet_is_exact_duplicate():
    duplicates, clean = stage.split_duplicates(_posts(BASE, "RT @user: " + BASE))
    assert list(clean["id"]) == ["p0"]
    assert list(duplicates["duplicate_of"]) == ["p0"]
    assert list(duplicates["duplicate_reason"]) == ["same text as an earlier post"]


def test_same_id_other_text():
    posts = pd.DataFrame({"id": ["x", "x"], "text": [BASE, "something else entirely here"]})
    duplicates, clean = stage.split_duplicates(posts)
    assert len(clean) == 1
    assert list(duplicates["duplicate_reason"]) == ["id already used by an earlier post"]


def test_chinese_near_duplicate():
    first = "今天的演唱会太棒了！现场气氛超级好，下次还要来 #演唱会#"
    second = "今天的演唱会太棒了!!现场气氛超级好，下次还要来 #演唱会#"
    duplicates, _ = stage.split_duplicates(_posts(normalize_text(first), normalize_text(second)))
    assert list(duplicates["duplicate_of"]) == ["p0"]


def test_jaccard_of_identical_sets():
    assert jaccard(shingles(BASE), shingles(BASE)) == 1.0


def _write_day(folder, day: dt.date, rows: list[dict]) -> None:
    target = folder / f"date={day.isoformat()}"
    target.mkdir(parents=True, exist_ok=True)
    (target / "posts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_duplicate_across_days(settings, tmp_path):
    source = tmp_path / "source"
    first, second = dt.date(2026, 12, 1), dt.date(2026, 12, 2)
    _write_day(source, first, [{"id": "d1", "text": BASE}])
    _write_day(source, second, [{"id": "d2", "text": "RT @airline: " + BASE},
                                {"id": "d3", "text": "A new and unrelated post for day two"}])
    jobs.collect_day(first, str(source), settings)
    manifest = jobs.collect_day(second, str(source), settings)
    duplicates = storage.read_frame(storage.open_store(settings.store), stage.DUPLICATES, second)
    assert manifest["duplicates"] == 1
    assert list(duplicates["duplicate_of"]) == ["d1"]
    assert manifest["clean"] == 1
