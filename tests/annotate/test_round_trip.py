"""Round trips through every tool format, on a real local store.

Forward: export tasks, finish them as the tool's export would look, import, and check
the labels partitions. Backward: write known labels as pre-annotations, accept them
unchanged in the tool, import, and get the same labels back. Several annotators per post
exercise the majority vote, ties and the agreement report.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from tasks import cli, storage
from tasks.annotate import simulate
from tasks.annotate.export import ANNOTATION_TASKS, export_for_labeling, exported_texts
from tasks.annotate.formats import Prediction
from tasks.annotate.formats.conll import build_conll
from tasks.annotate.formats.doccano import build_lines
from tasks.annotate.formats.label_studio import build_tasks
from tasks.annotate.labels import (
    ENTITY_LABELS,
    LABEL_ANNOTATIONS,
    LABELS,
    LABELS_QUARANTINE,
    LABELS_REVIEW,
    agreement_key,
    files_to_import,
    import_labels,
    load_all_labels,
    load_entity_labels,
)
from tasks.collect.stage import CLEAN

DAY = dt.date(2024, 3, 1)
NEXT_DAY = dt.date(2024, 3, 2)
LABEL_SET = ["negative", "neutral", "positive"]
TYPES = ["person", "location"]
TEXTS = {
    "p1": "Alice 😀 flew to 北京 with Bob Marley",
    "p2": "@user loved the show in Paris 🎉",
    "p3": "nothing to tag here [email]",
    "p4": "Tokyo again!",
}
GOLD_SPANS = {
    "p1": [(0, 5, "person"), (16, 18, "location"), (24, 34, "person")],
    "p2": [(24, 29, "location")],
    "p3": [],
    "p4": [(0, 5, "location")],
}
# Three annotators: positive/negative votes aaa, aab, bbb, abb. Fleiss' kappa is 1/3
# (worked out in test_agreement.py), and every post has a majority.
THREE_SENTIMENT = {
    "ann@x.org": {"p1": "positive", "p2": "positive", "p3": "negative", "p4": "positive"},
    "bob@x.org": {"p1": "positive", "p2": "positive", "p3": "negative", "p4": "negative"},
    "cy@x.org": {"p1": "positive", "p2": "negative", "p3": "negative", "p4": "negative"},
}
# Two annotators who differ on p2: a tie. Cohen's kappa over the four posts: observed 3/4,
# chance (2*1 + 1*2 + 1*1) / 16 = 5/16, kappa = (12/16 - 5/16) / (11/16) = 7/11.
TWO_SENTIMENT = {
    "ann": {"p1": "positive", "p2": "positive", "p3": "negative", "p4": "neutral"},
    "bob": {"p1": "positive", "p2": "negative", "p3": "negative", "p4": "neutral"},
}


@pytest.fixture
def store(tmp_path) -> storage.LocalStore:
    return storage.LocalStore(tmp_path / "store")


@pytest.fixture
def inbox(tmp_path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def clean_posts() -> pd.DataFrame:
    return pd.DataFrame({"id": list(TEXTS), "text": list(TEXTS.values()),
                         "lang": ["en", "en", "en", "ja"]})


def export_every_format(store) -> None:
    export_for_labeling(store, DAY, clean_posts(), size=10, labels=LABEL_SET,
                        formats=["label_studio", "doccano", "conll"],
                        tasks=["sentiment", "entities"], entity_types=TYPES)


def exported(store, name: str) -> str:
    return store.read_bytes(storage.partition_key(ANNOTATION_TASKS, DAY, name)).decode()


def run_import(store, inbox, day=DAY) -> dict:
    return import_labels(store, day, files_to_import(store, inbox, day), LABEL_SET, TYPES)


def as_tuples(spans_json: str) -> list[tuple]:
    return [tuple(span) for span in json.loads(spans_json)]


def frame_by_post(frame: pd.DataFrame, column: str) -> dict:
    return dict(zip(frame["post_id"], frame[column]))


# Label Studio


def test_label_studio_sentiment_round_trip(store, inbox):
    export_every_format(store)
    tasks = json.loads(exported(store, "sentiment.label_studio.json"))
    finished = simulate.annotate_label_studio(tasks, THREE_SENTIMENT, "2024-03-01T12:00:00Z")
    (inbox / "project-1.json").write_text(json.dumps(finished, ensure_ascii=False))

    counts = run_import(store, inbox)

    labels = storage.read_frame(store, LABELS, DAY)
    assert counts["labels"] == 4
    assert counts["annotations"] == 12
    assert counts["review"] == 0
    assert frame_by_post(labels, "label") == {
        "p1": "positive", "p2": "positive", "p3": "negative", "p4": "negative"}
    assert frame_by_post(labels, "status") == {
        "p1": "unanimous", "p2": "majority", "p3": "unanimous", "p4": "majority"}
    assert frame_by_post(labels, "text") == TEXTS
    assert set(labels["annotator"]) == {"ann@x.org,bob@x.org,cy@x.org"}
    assert set(labels["batch"]) == {"2024-03-01"}
    assert set(labels["annotated_at"]) == {"2024-03-01T12:00:00Z"}
    assert json.loads(frame_by_post(labels, "votes")["p4"]) == {
        "negative": ["bob@x.org", "cy@x.org"], "positive": ["ann@x.org"]}

    report = storage.read_json(store, agreement_key(DAY))
    sentiment = report["tasks"]["sentiment"]
    assert report["batch"] == "2024-03-01"
    assert report["files"] == ["project-1.json"]
    assert sentiment["statistic"] == "fleiss_kappa"
    assert sentiment["kappa"] == pytest.approx(1 / 3)
    assert sentiment["annotators"] == ["ann@x.org", "bob@x.org", "cy@x.org"]
    assert sentiment["statuses"] == {"majority": 2, "unanimous": 2}


def test_label_studio_entities_round_trip(store, inbox):
    export_every_format(store)
    tasks = json.loads(exported(store, "entities.label_studio.json"))
    missing_bob = {**GOLD_SPANS, "p1": GOLD_SPANS["p1"][:2]}
    answers = {"a": GOLD_SPANS, "b": missing_bob, "c": GOLD_SPANS}
    (inbox / "ner.json").write_text(json.dumps(simulate.annotate_label_studio(tasks, answers)))

    counts = run_import(store, inbox)

    entity_labels = storage.read_frame(store, ENTITY_LABELS, DAY)
    assert counts["entity_labels"] == 4
    assert counts["labels"] == 0
    assert {post: as_tuples(spans) for post, spans in
            frame_by_post(entity_labels, "spans").items()} == GOLD_SPANS
    assert frame_by_post(entity_labels, "status")["p1"] == "majority"
    assert frame_by_post(entity_labels, "text") == TEXTS
    report = storage.read_json(store, agreement_key(DAY))["tasks"]["entities"]
    assert report["statistic"] == "fleiss_kappa"
    assert 0.0 < report["kappa"] < 1.0


def test_label_studio_cancelled_not_a_vote(store, inbox):
    export_every_format(store)
    tasks = json.loads(exported(store, "sentiment.label_studio.json"))[:1]
    finished = simulate.annotate_label_studio(tasks, {"a": {"p1": "positive"},
                                                      "b": {"p1": "negative"}})
    finished[0]["annotations"][1]["was_cancelled"] = True
    (inbox / "one.json").write_text(json.dumps(finished))

    run_import(store, inbox)

    labels = storage.read_frame(store, LABELS, DAY)
    assert frame_by_post(labels, "label") == {"p1": "positive"}
    assert frame_by_post(labels, "status") == {"p1": "single"}


# doccano


def test_doccano_zip_sentiment_tie(store, inbox):
    export_every_format(store)
    files = simulate.annotate_doccano(exported(store, "sentiment.doccano.jsonl"), TWO_SENTIMENT)
    with zipfile.ZipFile(inbox / "doccano-export.zip", "w") as archive:
        for user, text in files.items():
            archive.writestr(f"{user}.jsonl", text)

    counts = run_import(store, inbox)

    labels = storage.read_frame(store, LABELS, DAY)
    review = storage.read_frame(store, LABELS_REVIEW, DAY)
    assert counts["review"] == 1
    assert frame_by_post(labels, "label") == {"p1": "positive", "p3": "negative", "p4": "neutral"}
    assert list(review["post_id"]) == ["p2"]
    assert list(review["task"]) == ["sentiment"]
    assert json.loads(review["votes"][0]) == {"negative": ["bob"], "positive": ["ann"]}
    assert review["source_file"][0] == "doccano-export.zip:ann.jsonl,doccano-export.zip:bob.jsonl"
    report = storage.read_json(store, agreement_key(DAY))["tasks"]["sentiment"]
    assert report["statistic"] == "cohen_kappa"
    assert report["kappa"] == pytest.approx(7 / 11)
    assert report["ties"] == 1


def test_doccano_entities_round_trip(store, inbox):
    export_every_format(store)
    other = {**GOLD_SPANS, "p2": []}
    files = simulate.annotate_doccano(exported(store, "entities.doccano.jsonl"),
                                      {"ann": GOLD_SPANS, "bob": other})
    for user, text in files.items():
        (inbox / f"{user}.jsonl").write_text(text)

    run_import(store, inbox)

    entity_labels = storage.read_frame(store, ENTITY_LABELS, DAY)
    review = storage.read_frame(store, LABELS_REVIEW, DAY)
    assert {post: as_tuples(spans) for post, spans in
            frame_by_post(entity_labels, "spans").items()} == {
        post: spans for post, spans in GOLD_SPANS.items() if post != "p2"}
    assert list(review["post_id"]) == ["p2"]
    assert json.loads(review["votes"][0]) == {"24-29:location": ["ann"]}


def test_doccano_unlabeled_lines_skipped(store, inbox):
    export_every_format(store)
    files = simulate.annotate_doccano(exported(store, "sentiment.doccano.jsonl"),
                                      {"ann": {"p3": "neutral"}})
    (inbox / "ann.jsonl").write_text(files["ann"])

    counts = run_import(store, inbox)

    assert counts["annotations"] == 1
    assert counts["quarantined"] == 0
    assert frame_by_post(storage.read_frame(store, LABELS, DAY), "label") == {"p3": "neutral"}


# CoNLL


def test_conll_round_trip(store, inbox):
    export_every_format(store)
    finished = simulate.annotate_conll(exported(store, "entities.conll"), exported_texts(store),
                                       GOLD_SPANS)
    (inbox / "carol.conll").write_text(finished)

    counts = run_import(store, inbox)

    entity_labels = storage.read_frame(store, ENTITY_LABELS, DAY)
    assert counts["entity_labels"] == 4
    assert {post: as_tuples(spans) for post, spans in
            frame_by_post(entity_labels, "spans").items()} == GOLD_SPANS
    assert frame_by_post(entity_labels, "text") == TEXTS
    assert set(entity_labels["annotator"]) == {"carol"}
    assert set(entity_labels["status"]) == {"single"}


def test_conll_without_exported_text(store, inbox):
    (inbox / "dan.conll").write_text("-DOCSTART-\tx1\nNew\tB-location\nYork\tI-location\n"
                                     "rocks\tO\n")

    run_import(store, inbox)

    entity_labels = storage.read_frame(store, ENTITY_LABELS, DAY)
    assert list(entity_labels["text"]) == ["New York rocks"]
    assert as_tuples(entity_labels["spans"][0]) == [(0, 8, "location")]


def test_conll_missing_post_id_quarantined(store, inbox):
    (inbox / "dan.conll").write_text("Paris\tB-location\n")

    counts = run_import(store, inbox)

    quarantine = storage.read_frame(store, LABELS_QUARANTINE, DAY)
    assert counts["quarantined"] == 1
    assert "no '-DOCSTART-<TAB>post id' line" in quarantine["reason"][0]


# backward: known labels written as pre-annotations come back unchanged


def prediction_posts() -> list[dict]:
    return [{"id": post, "text": text, "lang": "en", "partition": DAY.isoformat()}
            for post, text in TEXTS.items()]


def span_predictions() -> list[Prediction]:
    return [Prediction("model/7", spans=[{"start": s, "end": e, "type": t, "score": 0.9}
                                         for s, e, t in GOLD_SPANS[post]],
                       score=0.9 if GOLD_SPANS[post] else None) for post in TEXTS]


def label_predictions() -> list[Prediction]:
    labels = ["positive", "neutral", "negative", "neutral"]
    return [Prediction("model/3", label=label, score=0.8) for label in labels]


def accept_predictions(tasks: list[dict], annotator: str) -> list[dict]:
    """Submit every task's first prediction unchanged, as a Label Studio export shows it."""
    return [{**task, "id": number, "annotations": [{
        "id": number, "completed_by": {"email": annotator}, "was_cancelled": False,
        "updated_at": "2024-03-01T09:00:00Z", "result": task["predictions"][0]["result"]}]}
        for number, task in enumerate(tasks, start=1)]


def test_label_studio_predictions_format():
    tasks = build_tasks(prediction_posts(), "entities", span_predictions())

    prediction = tasks[0]["predictions"][0]
    assert prediction["model_version"] == "model/7"
    assert prediction["score"] == 0.9
    assert [r["value"]["text"] for r in prediction["result"]] == ["Alice", "北京", "Bob Marley"]
    assert {r["type"] for r in prediction["result"]} == {"labels"}
    assert {r["from_name"] for r in prediction["result"]} == {"entities"}
    assert "score" not in tasks[2]["predictions"][0]


def test_label_studio_accepted_predictions(store, inbox):
    posts = prediction_posts()
    tasks = build_tasks(posts, "entities", span_predictions())
    tasks += build_tasks(posts, "sentiment", label_predictions())
    (inbox / "accepted.json").write_text(json.dumps(accept_predictions(tasks, "ann")))

    run_import(store, inbox)

    entity_labels = storage.read_frame(store, ENTITY_LABELS, DAY)
    labels = storage.read_frame(store, LABELS, DAY)
    assert {post: as_tuples(spans) for post, spans in
            frame_by_post(entity_labels, "spans").items()} == GOLD_SPANS
    assert frame_by_post(labels, "label") == {
        "p1": "positive", "p2": "neutral", "p3": "negative", "p4": "neutral"}


def test_doccano_accepted_predictions(store, inbox):
    posts = prediction_posts()
    lines = build_lines(posts, "entities", span_predictions())
    lines += build_lines(posts, "sentiment", label_predictions())
    exported_lines = [json.loads(line) for line in lines.splitlines()]
    (inbox / "ann.jsonl").write_text("".join(
        json.dumps({"id": n, **line}, ensure_ascii=False) + "\n"
        for n, line in enumerate(exported_lines, start=1)))

    run_import(store, inbox)

    entity_labels = storage.read_frame(store, ENTITY_LABELS, DAY)
    labels = storage.read_frame(store, LABELS, DAY)
    assert exported_lines[0]["model_version"] == "model/7"
    assert {post: as_tuples(spans) for post, spans in
            frame_by_post(entity_labels, "spans").items()} == GOLD_SPANS
    assert frame_by_post(labels, "label")["p2"] == "neutral"


def test_conll_accepted_predictions(store, inbox):
    text = build_conll(prediction_posts(), span_predictions())
    path = inbox / "ann.conll"
    path.write_text(text)

    import_labels(store, DAY, [path], LABEL_SET, TYPES, post_texts=TEXTS)

    entity_labels = storage.read_frame(store, ENTITY_LABELS, DAY)
    assert text.splitlines()[:3] == ["-DOCSTART-\tp1", "Alice\tB-person", "😀\tO"]
    assert {post: as_tuples(spans) for post, spans in
            frame_by_post(entity_labels, "spans").items()} == GOLD_SPANS


# ties, quarantine and the annotation log


def test_tie_waits_for_review(store, inbox):
    export_every_format(store)
    tasks = json.loads(exported(store, "sentiment.label_studio.json"))
    (inbox / "first.json").write_text(json.dumps(
        simulate.annotate_label_studio(tasks, TWO_SENTIMENT, "2024-03-01T10:00:00Z")))
    run_import(store, inbox)
    assert "p2" not in set(load_all_labels(store)["post_id"])

    review = {"lead": {"p2": "negative"}}
    (inbox / "review.json").write_text(json.dumps(
        simulate.annotate_label_studio(tasks, review, "2024-03-02T10:00:00Z")))
    counts = run_import(store, inbox, NEXT_DAY)

    view = load_all_labels(store)
    assert counts["labels"] == 1
    assert frame_by_post(view, "label")["p2"] == "negative"
    assert frame_by_post(view, "annotator")["p2"] == "lead"
    assert len(view) == 4


def test_entity_rows_quarantined(store, inbox):
    lines = [
        {"text": "Paris", "post_id": "q1", "task": "entities", "label": [[0, 5, "city"]]},
        {"text": "Paris", "post_id": "q2", "task": "entities", "label": [[0, 9, "location"]]},
        {"text": "mail bob@example.com", "post_id": "q3", "task": "entities", "label": []},
        {"text": "Rome", "post_id": "q4", "task": "entities", "label": [[0, 4, "location"]]},
    ]
    (inbox / "ann.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    counts = run_import(store, inbox)

    quarantine = storage.read_frame(store, LABELS_QUARANTINE, DAY)
    assert counts["entity_labels"] == 1
    assert list(quarantine["line"]) == [1, 2, 3]
    assert set(quarantine["task"]) == {"entities"}
    assert "entity type 'city' is not in the entity types" in quarantine["reason"][0]
    assert "span 0-9 is outside the text (5 characters)" in quarantine["reason"][1]
    assert "handle, e-mail address or phone number" in quarantine["reason"][2]


def test_annotation_log_keeps_every_vote(store, inbox):
    export_every_format(store)
    tasks = json.loads(exported(store, "sentiment.label_studio.json"))
    (inbox / "votes.json").write_text(json.dumps(simulate.annotate_label_studio(
        tasks, THREE_SENTIMENT, "2024-03-01T12:00:00Z")))

    run_import(store, inbox)

    log = storage.read_frame(store, LABEL_ANNOTATIONS, DAY)
    assert len(log) == 12
    assert set(log["batch"]) == {"2024-03-01"}
    p4 = log[log["post_id"] == "p4"]
    assert dict(zip(p4["annotator"], p4["label"])) == {
        "ann@x.org": "positive", "bob@x.org": "negative", "cy@x.org": "negative"}


def test_entity_training_view(store, inbox):
    export_every_format(store)
    finished = simulate.annotate_conll(exported(store, "entities.conll"), exported_texts(store),
                                       GOLD_SPANS)
    (inbox / "carol.conll").write_text(finished)
    run_import(store, inbox)

    view = load_entity_labels(store)

    assert {post: as_tuples(spans) for post, spans in frame_by_post(view, "spans").items()} \
        == GOLD_SPANS
    assert set(view["version"]) == {1}


# pulse annotate


def run_cli(arguments: list[str]) -> tuple[int, str]:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = cli.main(arguments)
    return code, output.getvalue()


def test_cli_export_and_import(settings, tmp_path):
    store = storage.open_store(settings.store)
    storage.write_frame(store, CLEAN, DAY, clean_posts())

    code, output = run_cli(["annotate", "export", "--date", "2024-03-01", "--format", "doccano"])

    assert code == 0
    summary = json.loads(output)
    assert sorted(summary["files"]) == ["entities.doccano.jsonl", "sentiment.doccano.jsonl"]
    lines = exported(store, "sentiment.doccano.jsonl")
    finished = simulate.annotate_doccano(lines, {"ann": THREE_SENTIMENT["ann@x.org"]})
    path = tmp_path / "ann.jsonl"
    path.write_text(finished["ann"])

    code, output = run_cli(["annotate", "import", "--date", "2024-03-01", "--file", str(path)])

    assert code == 0
    assert json.loads(output)["labels"] == 4
    labels = storage.read_frame(store, LABELS, DAY)
    assert frame_by_post(labels, "label") == THREE_SENTIMENT["ann@x.org"]


def test_cli_import_missing_file(settings, tmp_path):
    code, _ = run_cli(["annotate", "import", "--date", "2024-03-01",
                       "--file", str(tmp_path / "absent.json")])

    assert code == 2
