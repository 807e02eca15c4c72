"""Build stores of clean posts, manifests and scores for report tests, with no model.

Every number that the report tests assert follows from the rows below:

- 2026-03-01: manifest 6 collected = 4 clean + 1 duplicate + 1 quarantined; sentiment
  2 negative, 1 neutral, 1 positive (50.0 / 25.0 / 25.0 %).
- 2026-03-02: no manifest, 5 clean posts, all positive (0.0 / 0.0 / 100.0 %).
- 2026-03-03 (the report's day): manifest 12 = 8 + 2 + 2, two quarantined records with an
  empty text; sentiment 2 negative, 2 neutral, 4 positive (25.0 / 25.0 / 50.0 %); entity
  spans Delta (corporation) 3 times, Boston (location) 2 times, "<b>Acme</b>" (product)
  once. The negative post with the highest confidence (0.99) contains a ``<script>`` tag.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

from tasks import storage
from tasks.collect.stage import CLEAN, MANIFESTS, QUARANTINE
from tasks.score.batch import SCORES

DAY = dt.date(2026, 3, 3)
FIRST_DAY = dt.date(2026, 3, 1)
SECOND_DAY = dt.date(2026, 3, 2)
SCRIPT_POST = "<script>alert('x')</script> worst airline ever, Delta lost my bag"
MODEL_VERSIONS = {"sentiment": "3", "entities": "2", "retrieval": "base-model"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# (text, label, confidence, entities as (type, text)) of each clean post of DAY.
DAY_POSTS = [
    (SCRIPT_POST, "negative", 0.99, [("corporation", "Delta")]),
    ("Flight to Boston delayed three hours", "negative", 0.80, [("location", "Boston")]),
    ("Boarding starts at gate B12", "neutral", 0.70, []),
    ("Is the lounge open this early?", "neutral", 0.60, []),
    ("Delta crew upgraded us, lovely", "positive", 0.95, [("corporation", "Delta")]),
    ("Landed in Boston early", "positive", 0.90, [("location", "Boston")]),
    ("Smoothest boarding with Delta", "positive", 0.85, [("corporation", "Delta")]),
    ("The <b>Acme</b> snacks were great", "positive", 0.75, [("product", "<b>Acme</b>")]),
]
FIRST_DAY_LABELS = ["negative", "negative", "neutral", "positive"]
SECOND_DAY_COUNT = 5


def clean_frame(day: dt.date, texts: list[str], lang: str = "en") -> pd.DataFrame:
    """Return clean_posts rows with ids ``<day>-<n>`` and the given texts."""
    return pd.DataFrame({
        "id": [f"{day.isoformat()}-{n}" for n in range(len(texts))],
        "text": texts,
        "lang": [lang] * len(texts),
        "created_at": [f"{day.isoformat()}T12:00:00Z"] * len(texts),
        "author": ["author-1"] * len(texts),
        "source": ["test"] * len(texts),
        "line": list(range(1, len(texts) + 1)),
    })


def scores_frame(posts: pd.DataFrame, labels: list[str], confidences: list[float],
                 entities: list[list[tuple[str, str]]] | None = None) -> pd.DataFrame:
    """Return a scores partition for ``posts`` with sentiment and, if given, entity spans."""
    frame = pd.DataFrame({"id": posts["id"], "label": labels, "confidence": confidences})
    for label in ("negative", "neutral", "positive"):
        frame[f"prob_{label}"] = [c if lab == label else (1 - c) / 2
                                  for lab, c in zip(labels, confidences)]
    if entities is not None:
        frame["entities"] = [json.dumps([{"start": text.find(value), "end": text.find(value) + len(value),
                                          "type": kind, "text": value, "score": 0.9}
                                         for kind, value in spans])
                             for text, spans in zip(posts["text"], entities)]
    frame["model_versions"] = json.dumps(MODEL_VERSIONS, sort_keys=True)
    return frame


def write_manifest(store: storage.Store, day: dt.date, collected: int, clean: int,
                   duplicates: int, quarantined: int,
                   failed: dict[str, list[str]] | None = None) -> None:
    manifest = {"date": day.isoformat(), "source": "test", "collected": collected,
                "clean": clean, "duplicates": duplicates, "quarantined": quarantined,
                "failed_expectations": failed or {}}
    storage.write_json(store, storage.partition_key(MANIFESTS, day, "collect.json"), manifest)


def quarantine_frame(count: int) -> pd.DataFrame:
    return pd.DataFrame({
        "source": ["test"] * count, "line": list(range(1, count + 1)),
        "id": [f"q{n}" for n in range(count)], "field": ["text"] * count,
        "reason": [f"test line {n + 1}, field 'text': text is empty" for n in range(count)],
        "fix": ["drop the record"] * count,
        "expectation": ["expect_column_values_to_not_be_null"] * count,
        "raw": ["{}"] * count,
    })


def build_store(store: storage.Store, with_scores: bool = True) -> None:
    """Write three days of clean posts and manifests, and scores unless ``with_scores`` is False."""
    first = clean_frame(FIRST_DAY, [f"first day post {n}" for n in range(4)])
    storage.write_frame(store, CLEAN, FIRST_DAY, first)
    write_manifest(store, FIRST_DAY, 6, 4, 1, 1)

    second = clean_frame(SECOND_DAY, [f"second day post {n}" for n in range(SECOND_DAY_COUNT)])
    storage.write_frame(store, CLEAN, SECOND_DAY, second)

    day = clean_frame(DAY, [text for text, *_ in DAY_POSTS])
    storage.write_frame(store, CLEAN, DAY, day)
    storage.write_frame(store, QUARANTINE, DAY, quarantine_frame(2))
    write_manifest(store, DAY, 12, 8, 2, 2, {
        "raw_posts": ["expect_column_values_to_not_be_null(text): 2 rows"], "clean_posts": []})

    if not with_scores:
        return
    storage.write_frame(store, SCORES, FIRST_DAY,
                        scores_frame(first, FIRST_DAY_LABELS, [0.9] * 4))
    storage.write_frame(store, SCORES, SECOND_DAY,
                        scores_frame(second, ["positive"] * SECOND_DAY_COUNT,
                                     [0.8] * SECOND_DAY_COUNT))
    storage.write_frame(store, SCORES, DAY, scores_frame(
        day, [label for _, label, _, _ in DAY_POSTS], [c for _, _, c, _ in DAY_POSTS],
        [spans for *_, spans in DAY_POSTS]))


class ScriptEncoder:
    """Deterministic stand-in for a sentence encoder: ASCII and non-ASCII letter shares."""

    uri = "test-script-encoder"
    dimension = 3

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            letters = [ch for ch in text if ch.isalpha()] or ["a"]
            ascii_share = sum(ch.isascii() for ch in letters) / len(letters)
            rows.append([ascii_share, 1 - ascii_share, 0.1])
        vectors = np.asarray(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def register_champion(settings, reference: pd.DataFrame | None) -> str:
    """Register a sentiment 'champion' whose run logged ``reference`` as its validation set.

    No model is trained: the version points at the run's artifacts. With ``reference``
    None the run logs nothing. Returns the run id.
    """
    import mlflow

    from tasks.registry.tracking import configure_mlflow

    client = configure_mlflow(settings)
    name = settings.registry.sentiment_model
    with mlflow.start_run() as run:
        if reference is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "validation.parquet"
                reference.to_parquet(path, index=False)
                mlflow.log_artifact(str(path), "evaluation")
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, run.info.artifact_uri, run_id=run.info.run_id)
    client.set_registered_model_alias(name, settings.registry.champion_alias, version.version)
    return run.info.run_id


def png_size(data: bytes) -> tuple[int, int]:
    """Return (width, height) from a PNG's IHDR chunk; raise ValueError if not a PNG."""
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.section = ""
        self.rows: list[list[str]] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.section = dict(attrs).get("id", "")
        elif tag == "table":
            self.rows = []
            self.tables.setdefault(self.section, []).append(self.rows)
        elif tag == "tr" and self.rows is not None:
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.rows:
            self.rows[-1].append("".join(self.cell))
            self.cell = None
        elif tag == "table":
            self.rows = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def html_tables(html: str) -> dict[str, list[list[list[str]]]]:
    """Return the tables of each report section (by section id) as rows of cell texts."""
    parser = _TableParser()
    parser.feed(html)
    return parser.tables
