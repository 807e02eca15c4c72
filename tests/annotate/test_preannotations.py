"""Pre-annotations from real champion models, and the label versions of a training run.

The module trains two tiny models once: a sentiment classifier through the training job,
on labels imported from the built-in sample, and an entity tagger on generated posts.
Both get the champion alias, then a day's export is pre-annotated with them. Training
is one epoch (sentiment) and two epochs on 48 posts (entities).
"""

from __future__ import annotations

import datetime as dt
import json
import random

import mlflow
import pandas as pd
import pytest

from tasks import jobs, storage
from tasks.annotate.export import ANNOTATION_TASKS
from tasks.annotate.history import label_versions
from tasks.annotate.labels import ENTITY_LABELS, LABELS, import_labels, load_all_labels
from tasks.collect.sample import generate_posts
from tasks.collect.stage import CLEAN
from tasks.extract.conll import TaggedPost
from tasks.extract.spans import Span, spans_to_tags
from tasks.registry.tracking import configure_mlflow
from tasks.settings import reload_settings

pytestmark = pytest.mark.slow

LABEL_DAY = dt.date(2026, 1, 1)
EXPORT_DAY = dt.date(2026, 1, 2)
SENTIMENT_MODEL = "social-pulse-sentiment"
ENTITY_MODEL = "social-pulse-entities"
NAMES = [["Ada"], ["Omar", "Haddad"], ["Lin"], ["Sofia", "Reyes"]]
CITIES = [["Lisbon"], ["Cairo"], ["Oslo"], ["San", "Diego"]]
PATTERNS = [
    ["{name}", "moved", "to", "{city}", "last", "week"],
    ["met", "{name}", "near", "{city}", "station", "🚆"],
    ["{city}", "was", "sunny", "for", "{name}", "!"],
]
EXPORT_TEXTS = ["Ada moved to Lisbon last week", "met Omar Haddad near Cairo station 🚆",
                "Oslo was sunny for Lin !", "no names in this one"]


def tagged_posts(count: int, seed: int) -> list[TaggedPost]:
    """Posts built from PATTERNS with one person and one city each, tagged IOB2."""
    rng = random.Random(seed)
    posts = []
    for _ in range(count):
        tokens, tags = [], []
        for word in rng.choice(PATTERNS):
            kind = {"{name}": "person", "{city}": "location"}.get(word)
            if kind is None:
                tokens.append(word)
                tags.append("O")
                continue
            words = rng.choice(NAMES if kind == "person" else CITIES)
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        posts.append(TaggedPost(tokens, tags))
    return posts


def import_sample_labels(store, folder) -> None:
    rows = [{"post_id": post.id, "text": post.text, "label": post.label, "annotator": "ann"}
            for post in generate_posts(LABEL_DAY, count=60)]
    path = folder / "sample.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    import_labels(store, LABEL_DAY, [path], ["negative", "neutral", "positive"])


def train_entity_champion(settings) -> None:
    from tasks.extract.train import train_and_register_entities

    tiny = settings.model_copy(update={"train": settings.train.model_copy(
        update={"epochs": 2.0, "batch_size": 8, "max_length": 32})})
    train_and_register_entities(tagged_posts(48, seed=1), tagged_posts(12, seed=2), tiny,
                                ENTITY_MODEL, {}, learning_rate=2e-4)


@pytest.fixture(scope="module")
def champions(tmp_path_factory):
    """Train both models, make them champions, and export a day of posts."""
    folder = tmp_path_factory.mktemp("preannotate")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_HOME", str(folder / "home"))
        settings = reload_settings()
        store = storage.open_store(settings.store)
        client = configure_mlflow(settings)

        import_sample_labels(store, folder)
        trained = jobs.train_sentiment(LABEL_DAY, settings)
        client.set_registered_model_alias(SENTIMENT_MODEL, "champion", trained["version"])
        train_entity_champion(settings)
        client.set_registered_model_alias(ENTITY_MODEL, "champion", "1")

        clean = pd.DataFrame({"id": [f"e{n}" for n in range(len(EXPORT_TEXTS))],
                              "text": EXPORT_TEXTS, "lang": ["en"] * len(EXPORT_TEXTS)})
        storage.write_frame(store, CLEAN, EXPORT_DAY, clean)
        exported = jobs.export_annotations(EXPORT_DAY, settings,
                                           formats=["label_studio", "doccano", "conll"])
        yield {"settings": settings, "store": store, "client": client, "trained": trained,
               "exported": exported, "folder": folder}
    reload_settings()


def read_export(champions, name: str) -> str:
    key = storage.partition_key(ANNOTATION_TASKS, EXPORT_DAY, name)
    return champions["store"].read_bytes(key).decode()


def champion_output(champions, model: str) -> pd.DataFrame:
    configure_mlflow(champions["settings"])
    loaded = mlflow.pyfunc.load_model(f"models:/{model}@champion")
    return loaded.predict(pd.DataFrame({"text": EXPORT_TEXTS}))


def test_training_run_logs_label_versions(champions):
    client, store = champions["client"], champions["store"]
    version = client.get_model_version(SENTIMENT_MODEL, champions["trained"]["version"])
    tags = client.get_run(version.run_id).data.tags
    expected = label_versions(load_all_labels(store, LABEL_DAY))

    assert expected.count == 60
    assert tags["data.label_versions_sha256"] == expected.sha256
    assert tags["data.label_versions_uri"].endswith(f"label_versions/{expected.sha256}.json")
    stored = storage.read_json(store, f"label_versions/{expected.sha256}.json")
    assert stored["labels"] == expected.labels
    assert all(entry.endswith("@1") for entry in stored["labels"])
    logged = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/data/label_versions.json")
    assert logged["labels"] == expected.labels
    assert logged["sha256"] == expected.sha256


def test_export_names_champions(champions):
    assert champions["exported"]["pre_annotated"] == {
        "sentiment": f"{SENTIMENT_MODEL}/1", "entities": f"{ENTITY_MODEL}/1"}


def test_sentiment_predictions_match_champion(champions):
    output = champion_output(champions, SENTIMENT_MODEL)
    tasks = json.loads(read_export(champions, "sentiment.label_studio.json"))
    lines = [json.loads(line) for line in
             read_export(champions, "sentiment.doccano.jsonl").splitlines()]

    predictions = [task["predictions"][0] for task in tasks]
    assert [p["model_version"] for p in predictions] == [f"{SENTIMENT_MODEL}/1"] * 4
    assert [p["result"][0]["value"]["choices"] for p in predictions] == \
        [[label] for label in output["label"]]
    assert [p["score"] for p in predictions] == [round(float(c), 4) for c in output["confidence"]]
    assert [line["label"] for line in lines] == [[label] for label in output["label"]]


def test_entity_predictions_match_champion(champions):
    output = [json.loads(found) for found in champion_output(champions, ENTITY_MODEL)["spans"]]
    tasks = json.loads(read_export(champions, "entities.label_studio.json"))
    conll_blocks = read_export(champions, "entities.conll").strip("\n").split("\n\n")

    assert sum(len(spans) for spans in output) >= 3  # the tiny tagger found some entities
    for text, spans, task, block in zip(EXPORT_TEXTS, output, tasks, conll_blocks):
        prediction = task["predictions"][0]
        assert prediction["model_version"] == f"{ENTITY_MODEL}/1"
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0])
                for r in prediction["result"]] == [(s["start"], s["end"], s["type"]) for s in spans]
        _, tags = spans_to_tags(text, [Span(s["start"], s["end"], s["type"]) for s in spans])
        assert [line.split("\t")[1] for line in block.split("\n")[1:]] == tags


def test_accepted_predictions_import(champions, tmp_path):
    store = champions["store"]
    tasks = json.loads(read_export(champions, "entities.label_studio.json"))
    tasks += json.loads(read_export(champions, "sentiment.label_studio.json"))
    accepted = [{**task, "annotations": [{"completed_by": {"email": "ann"},
                                          "result": task["predictions"][0]["result"]}]}
                for task in tasks]
    path = tmp_path / "accepted.json"
    path.write_text(json.dumps(accepted, ensure_ascii=False))

    import_labels(store, EXPORT_DAY, [path], ["negative", "neutral", "positive"],
                  champions["settings"].annotation.entity_types)

    labels = storage.read_frame(store, LABELS, EXPORT_DAY)
    entity_labels = storage.read_frame(store, ENTITY_LABELS, EXPORT_DAY)
    output = champion_output(champions, SENTIMENT_MODEL)
    spans = [json.loads(found) for found in champion_output(champions, ENTITY_MODEL)["spans"]]
    assert list(labels["label"]) == list(output["label"])
    assert [json.loads(value) for value in entity_labels["spans"]] == [
        [[s["start"], s["end"], s["type"]] for s in found] for found in spans]
