"""Export of annotation tasks: labeling configs, files per format, sampling and masking."""

from __future__ import annotations

import datetime as dt
import json
import logging
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from tasks import jobs, storage
from tasks.annotate.export import (
    ANNOTATION_TASKS,
    export_for_labeling,
    exportable_tasks,
    exported_texts,
    recheck_masking,
)
from tasks.annotate.formats.label_studio import choices_config, labels_config
from tasks.clean.text import normalize_text
from tasks.collect.stage import CLEAN

DAY = dt.date(2024, 3, 1)
LABEL_SET = ["negative", "neutral", "positive"]
TYPES = ["person", "location"]
ALL_FORMATS = ["label_studio", "doccano", "conll"]
BOTH_TASKS = ["sentiment", "entities"]
RAW_PII = [
    "ping @alice_w or mail bob.smith@example.com today",
    "call +1 415-555-0134 now",
    "微博 //@王小明: 电话13812345678",
    "plain text, nothing to hide",
]
PII_FRAGMENTS = ["alice_w", "bob.smith", "example.com", "415-555-0134", "13812345678", "王小明"]


@pytest.fixture
def store(tmp_path) -> storage.LocalStore:
    return storage.LocalStore(tmp_path / "store")


def make_clean_posts(count: int) -> pd.DataFrame:
    raw = [f"Post {n}: mail user{n}@example.com or call +1 415-555-01{n:02d}" for n in range(count)]
    return pd.DataFrame({
        "id": [f"p{n:03d}" for n in range(count)],
        "text": [normalize_text(text) for text in raw],
        "lang": ["en"] * count,
    })


def raw_pii_posts() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{n}" for n in range(len(RAW_PII))], "text": RAW_PII,
                         "lang": ["en", "en", "zh", "en"]})


def read_file(store: storage.LocalStore, name: str) -> bytes:
    return store.read_bytes(storage.partition_key(ANNOTATION_TASKS, DAY, name))


def read_lines(store: storage.LocalStore, name: str) -> list[dict]:
    return [json.loads(line) for line in read_file(store, name).splitlines()]


def exported_ids(store: storage.LocalStore) -> list[str]:
    tasks = json.loads(read_file(store, "sentiment.label_studio.json"))
    return [task["data"]["post_id"] for task in tasks]


def export_all(store, clean: pd.DataFrame, **options) -> dict:
    return export_for_labeling(store, DAY, clean, size=50, labels=LABEL_SET, formats=ALL_FORMATS,
                               tasks=BOTH_TASKS, entity_types=TYPES, **options)


# labeling configs


def test_choices_config_labels():
    root = ET.fromstring(choices_config(["negative", "neutral", "positive", 'a & "b"']))

    choices = root.find("Choices")
    assert choices is not None
    assert [c.get("value") for c in choices.findall("Choice")] == [
        "negative", "neutral", "positive", 'a & "b"']
    assert choices.get("name") == "sentiment"
    assert choices.get("toName") == "text"
    assert choices.get("choice") == "single"
    assert root.find("Text").get("value") == "$text"


def test_labels_config_spans():
    root = ET.fromstring(labels_config(["person", "creative-work", "<odd>"]))

    labels = root.find("Labels")
    assert labels is not None
    assert labels.get("name") == "entities"
    assert labels.get("toName") == "text"
    assert [label.get("value") for label in labels.findall("Label")] == [
        "person", "creative-work", "<odd>"]
    assert root.find("Text").get("name") == "text"


# files per format


def test_export_writes_every_format(store):
    result = export_all(store, make_clean_posts(5))

    assert sorted(result["files"]) == [
        "entities.conll", "entities.doccano.jsonl", "entities.label_studio.json",
        "entities.label_studio.xml", "sentiment.doccano.jsonl", "sentiment.label_studio.json",
        "sentiment.label_studio.xml"]
    assert result["count"] == 5
    assert result["pre_annotated"] == {"sentiment": None, "entities": None}
    config = ET.fromstring(read_file(store, "entities.label_studio.xml"))
    assert [label.get("value") for label in config.iter("Label")] == TYPES


def test_export_label_studio_tasks(store):
    clean = make_clean_posts(30)

    export_for_labeling(store, DAY, clean, size=10, labels=LABEL_SET)

    tasks = json.loads(read_file(store, "sentiment.label_studio.json"))
    assert len(tasks) == 10
    ids = [t["data"]["post_id"] for t in tasks]
    assert ids == sorted(ids)
    assert len(set(ids)) == 10
    texts = dict(zip(clean["id"], clean["text"]))
    assert all(t["data"]["text"] == texts[t["data"]["post_id"]] for t in tasks)
    assert tasks[0]["data"]["partition"] == "2024-03-01"
    assert tasks[0]["data"]["task"] == "sentiment"
    assert all("predictions" not in t for t in tasks)
    root = ET.fromstring(read_file(store, "sentiment.label_studio.xml"))
    assert [c.get("value") for c in root.iter("Choice")] == LABEL_SET


def test_export_without_champion_plain(store):
    export_all(store, make_clean_posts(2))

    doccano = read_lines(store, "sentiment.doccano.jsonl")
    entities = read_lines(store, "entities.doccano.jsonl")
    conll = read_file(store, "entities.conll").decode()
    assert [line["label"] for line in doccano] == [[], []]
    assert [line["post_id"] for line in entities] == ["p000", "p001"]
    assert all("model_version" not in line for line in doccano)
    assert conll.startswith("-DOCSTART-\tp000\nPost\tO\n0\tO\n:\tO\n")
    tags = [line.split("\t")[1] for line in conll.splitlines()
            if line and not line.startswith("-DOCSTART-")]
    assert set(tags) == {"O"}


def test_conll_only_entities(store):
    result = export_for_labeling(store, DAY, make_clean_posts(3), size=3, labels=LABEL_SET,
                                 formats=["conll"], tasks=BOTH_TASKS, entity_types=TYPES)

    assert list(result["files"]) == ["entities.conll"]
    assert result["pre_annotated"] == {"entities": None}


def test_exportable_tasks():
    assert exportable_tasks(BOTH_TASKS, ["conll"]) == ["entities"]
    assert exportable_tasks(BOTH_TASKS, ["doccano"]) == BOTH_TASKS


def test_export_unknown_format(store):
    with pytest.raises(ValueError, match="unknown export formats"):
        export_for_labeling(store, DAY, make_clean_posts(3), size=3, labels=LABEL_SET,
                            formats=["brat"])


def test_export_post_list(store):
    export_all(store, make_clean_posts(4))

    posts = storage.read_frame(store, ANNOTATION_TASKS, DAY)
    assert list(posts.columns) == ["id", "text", "lang"]
    assert list(posts["id"]) == ["p000", "p001", "p002", "p003"]
    assert exported_texts(store) == dict(zip(posts["id"], posts["text"]))


# sampling


def test_export_rerun_same_posts(store):
    clean = make_clean_posts(50)

    export_for_labeling(store, DAY, clean, size=10, labels=LABEL_SET)
    first = read_file(store, "sentiment.label_studio.json")
    export_for_labeling(store, DAY, clean.copy(), size=10, labels=LABEL_SET)
    second = read_file(store, "sentiment.label_studio.json")

    assert [t["data"]["post_id"] for t in json.loads(first)] == \
        [t["data"]["post_id"] for t in json.loads(second)]


def test_export_seed_changes_sample(store):
    clean = make_clean_posts(50)

    export_for_labeling(store, DAY, clean, size=10, labels=LABEL_SET, seed=0)
    first = exported_ids(store)
    export_for_labeling(store, DAY, clean, size=10, labels=LABEL_SET, seed=1)
    second = exported_ids(store)

    assert first != second


def test_export_size_above_count(store):
    result = export_for_labeling(store, DAY, make_clean_posts(3), size=200, labels=LABEL_SET)

    assert result["count"] == 3


# personal data


def test_recheck_masking_counts():
    posts, changed = recheck_masking(raw_pii_posts())

    assert changed == 3
    assert list(posts["text"]) == [
        "ping @user or mail [email] today",
        "call [phone] now",
        "微博 //@user: 电话[phone]",
        "plain text, nothing to hide",
    ]


def test_recheck_masking_keeps_masked():
    clean = make_clean_posts(3)

    posts, changed = recheck_masking(clean)

    assert changed == 0
    assert list(posts["text"]) == list(clean["text"])


def test_export_no_pii_leaves(store, caplog):
    with caplog.at_level(logging.WARNING, logger="tasks.annotate.export"):
        result = export_all(store, raw_pii_posts())

    assert result["remasked"] == 3
    written = b"".join(read_file(store, name) for name in result["files"])
    written += store.read_bytes(storage.partition_key(ANNOTATION_TASKS, DAY))
    for fragment in PII_FRAGMENTS:
        assert fragment.encode() not in written, fragment
    assert b"[email]" in written
    assert b"[phone]" in written
    assert b"@user" in written
    warned = [record.getMessage() for record in caplog.records]
    assert sum("masked again" in message for message in warned) == 3
    assert any(message.startswith("post r0 ") for message in warned)
    assert not any("alice_w" in message for message in warned)


def test_export_job_without_champion(settings, caplog):
    store = storage.open_store(settings.store)
    storage.write_frame(store, CLEAN, DAY, raw_pii_posts())

    with caplog.at_level(logging.WARNING, logger="tasks.annotate.preannotate"):
        result = jobs.export_annotations(DAY, settings, formats=["doccano", "conll"])

    assert sorted(result["files"]) == ["entities.conll", "entities.doccano.jsonl",
                                       "sentiment.doccano.jsonl"]
    assert result["pre_annotated"] == {"sentiment": None, "entities": None}
    assert result["remasked"] == 3
    messages = [record.getMessage() for record in caplog.records]
    assert any("social-pulse-sentiment has no 'champion' version" in m for m in messages)
    assert any("social-pulse-entities has no 'champion' version" in m for m in messages)
