"""Write an example daily report from the built-in sample source, with no model training.

    .venv/bin/python tests/report/make_example.py docs/report-example

Five days of sample posts go through the real collection stage (validation, quarantine,
cleaning, manifest). The scores are synthetic: each post gets its sample label and a
seeded random confidence. 10% of the labels are swapped for another label, and on the last
day 40% of the other posts become negative, both with a lower confidence. Entity spans
come from a short list of names. The sentiment
"champion" is a registered version with no model whose run logged 200 sample posts of an
earlier day as ``evaluation/validation.parquet``. The last day is embedded with the bundled
base model for the centroid comparison. Everything else runs in a temporary home.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd
from report_builders import register_champion

from tasks import jobs, storage
from tasks.clean.text import normalize_text
from tasks.collect import sample
from tasks.collect.stage import CLEAN
from tasks.report import daily
from tasks.retrieve import index
from tasks.retrieve.encoder import SentenceEncoder
from tasks.score.batch import SCORES
from tasks.settings import CollectSettings, Settings

DAYS = [dt.date(2026, 3, 1) + dt.timedelta(days=n) for n in range(5)]
REFERENCE_DAY = dt.date(2026, 2, 1)
ENCODER_URI = "all-MiniLM-L6-v2 (bundled base model)"
MODEL_VERSIONS = {"sentiment": "1", "entities": "2", "retrieval": ENCODER_URI}
LABELS = list(sample.SENTIMENT_LABELS)
# Names that the sample's templates use, with a WNUT-17 entity type.
ENTITY_NAMES = {
    "Pixel 9": "product", "Kindle": "product", "AirPods": "product", "MacBook": "product",
    "Spotify": "product", "Instagram": "product", "Duolingo": "product", "Notion": "product",
    "Uber": "corporation", "Delta": "corporation", "United": "corporation",
    "JetBlue": "corporation", "Dyson": "corporation", "Denver": "location",
    "Boston": "location", "SFO": "location", "Lakers": "group", "Warriors": "group",
    "Arsenal": "group", "Ippudo": "corporation",
}
ENTITY_PATTERN = re.compile("|".join(re.escape(name) for name in ENTITY_NAMES))


def synthetic_scores(posts: pd.DataFrame, gold: dict[str, str], rng: random.Random,
                     negative_tilt: float) -> pd.DataFrame:
    """Return a scores partition: noisy sample labels, random confidences, listed entities."""
    labels, confidences, spans = [], [], []
    for post_id, text in zip(posts["id"], posts["text"]):
        label = gold.get(post_id, "neutral")
        confidence = rng.uniform(0.6, 0.99)
        if rng.random() < 0.1:
            label = rng.choice([other for other in LABELS if other != label])
            confidence = rng.uniform(0.4, 0.7)
        if label != "negative" and rng.random() < negative_tilt:
            label = "negative"
            confidence = rng.uniform(0.4, 0.7)
        labels.append(label)
        confidences.append(round(confidence, 3))
        spans.append(json.dumps([{"start": m.start(), "end": m.end(), "type": ENTITY_NAMES[m[0]],
                                  "text": m[0], "score": 0.9}
                                 for m in ENTITY_PATTERN.finditer(text)]))
    frame = pd.DataFrame({"id": posts["id"], "label": labels, "confidence": confidences})
    frame["entities"] = spans
    frame["model_versions"] = json.dumps(MODEL_VERSIONS, sort_keys=True)
    return frame


def main(target: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="pulse-report-example-"))
    settings = Settings(home=home, collect=CollectSettings(sample_size=300))
    store = storage.open_store(settings.store)
    rng = random.Random(7)

    for day in DAYS:
        jobs.collect_day(day, "sample", settings)
        posts = storage.read_frame(store, CLEAN, day)
        tilt = 0.4 if day == DAYS[-1] else 0.0
        gold = sample.gold_labels(day, count=settings.collect.sample_size)
        storage.write_frame(store, SCORES, day, synthetic_scores(posts, gold, rng, tilt))

    reference = sample.generate_posts(REFERENCE_DAY, 200)
    register_champion(settings, pd.DataFrame({"text": [normalize_text(p.text) for p in reference],
                                              "label": [p.label for p in reference]}))
    encoder = SentenceEncoder(settings.base_model_path, uri=ENCODER_URI, max_length=64)
    index.build_index(store, DAYS[-1], encoder)

    report = daily.build_report(store, DAYS[-1], settings, load_encoder=lambda uri: encoder)
    for path in report.write_to(target):
        print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
