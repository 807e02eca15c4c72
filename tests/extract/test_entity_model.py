"""Entity tagger training, registration and prediction on a tiny real training run.

One model is trained per module on 64 generated posts and shared by the tests. The
module took about 20 s on two otherwise idle CPU cores. Two epochs at batch size 8 and
learning rate 2e-4 are enough for the model to find the generated entities, so the span
checks below have spans to check.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest

from tasks import jobs, storage
from tasks.collect.stage import CLEAN
from tasks.extract.commands import predict_entities_file, train_entities_from_files
from tasks.extract.conll import TaggedPost, check_tag, write_conll
from tasks.extract.train import EntityEarlyStopping
from tasks.registry.tracking import configure_mlflow
from tasks.retrieve.commands import build_index
from tasks.score.batch import NoChampionError
from tasks.settings import reload_settings

pytestmark = pytest.mark.slow

MODEL = "social-pulse-entities"
SCORE_DAY = dt.date(2026, 3, 1)
PEOPLE = [["Alice"], ["Bob", "Marley"], ["Chen", "Wei"], ["Maria"], ["Tom", "Hanks"]]
PLACES = [["Paris"], ["New", "York"], ["Tokyo"], ["北", "京"], ["Berlin"]]
TEMPLATES = [
    "{person} flew to {location} today 😀",
    "just saw {person} in {location} !",
    "{location} is lovely , says {person} 👍🏽",
    "heading to {location} tonight with {person} #fun",
]
TEXTS = [
    "Alice  flew to Paris today 😀",
    "just saw Chen Wei in 北京 !",
    "",
    "heading to Tokyo tonight with Tom Hanks #fun 🎉 " * 6,
]


def generate_posts(count: int, seed: int) -> list[TaggedPost]:
    """Posts from templates with a person and a location each, tagged IOB2."""
    rng = random.Random(seed)
    posts = []
    for _ in range(count):
        tokens, tags = [], []
        for word in rng.choice(TEMPLATES).split():
            if word not in ("{person}", "{location}"):
                tokens.append(word)
                tags.append("O")
                continue
            kind = word.strip("{}")
            name = rng.choice(PEOPLE if kind == "person" else PLACES)
            tokens.extend(name)
            tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1))
        posts.append(TaggedPost(tokens, tags))
    return posts


def label_studio_tasks(posts: list[TaggedPost]) -> list[dict]:
    """Label Studio tasks whose text joins each post's tokens with spaces."""
    tasks = []
    for post in posts:
        text, results = "", []
        for token, tag in zip(post.tokens, post.tags):
            start = len(text) + (1 if text else 0)
            text = f"{text} {token}" if text else token
            if tag.startswith("B-"):
                results.append({"type": "labels", "value": {
                    "start": start, "end": len(text), "text": token, "labels": [tag[2:]]}})
            elif tag.startswith("I-"):
                value = results[-1]["value"]
                value["end"], value["text"] = len(text), text[value["start"]:len(text)]
        tasks.append({"data": {"text": text}, "annotations": [{"result": results}]})
    return tasks


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once from a CoNLL train file and a Label Studio validation export.

    The learning rate is passed explicitly, so the run shows that it overrides the setting.
    """
    folder = tmp_path_factory.mktemp("entities")
    write_conll(folder / "train.conll", generate_posts(64, seed=1))
    validation = label_studio_tasks(generate_posts(24, seed=2))
    (folder / "validation.json").write_text(json.dumps(validation, ensure_ascii=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULSE_HOME", str(folder / "home"))
        patch.setenv("PULSE_TRAIN__EPOCHS", "2")
        patch.setenv("PULSE_TRAIN__BATCH_SIZE", "8")
        patch.setenv("PULSE_TRAIN__MAX_LENGTH", "32")
        settings = reload_settings()
        uri = train_entities_from_files(folder / "train.conll", folder / "validation.json",
                                        settings, learning_rate=2e-4)
        yield {"settings": settings, "uri": uri, "folder": folder}
    reload_settings()


def test_train_returns_version_uri(trained):
    assert re.fullmatch(rf"models:/{MODEL}/\d+", trained["uri"])


def test_version_tagged_with_data_and_code(trained):
    client = configure_mlflow(trained["settings"])
    version = client.get_model_version(MODEL, "1")
    assert version.tags["data.train_file"].endswith("train.conll")
    assert version.tags["data.validation_file"].endswith("validation.json")
    assert version.tags["data.train_size"] == "64"
    assert version.tags["data.validation_size"] == "24"
    assert version.tags["code_version"]
    assert 0.0 <= float(version.tags["validation_span_f1"]) <= 1.0
    assert 0.0 <= float(version.tags["validation_span_macro_f1"]) <= 1.0


def test_run_logs_span_metrics_and_artifacts(trained):
    client = configure_mlflow(trained["settings"])
    run = client.get_run(client.get_model_version(MODEL, "1").run_id)
    for key in ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "f1_person",
                "f1_location", "precision_location", "recall_person", "support_person",
                "train_seconds"):
        assert key in run.data.metrics
    assert run.data.metrics["support_person"] == 24
    assert run.data.params["labels"] == "O,B-location,I-location,B-person,I-person"
    assert run.data.params["train.max_length"] == "32"
    assert float(run.data.params["train.learning_rate"]) == 2e-4
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/span_f1_by_type.png" in artifacts
    assert "evaluation/validation.conll" in artifacts
    assert "evaluation/predictions.conll" in artifacts


def test_model_finds_entities(trained):
    client = configure_mlflow(trained["settings"])
    run = client.get_run(client.get_model_version(MODEL, "1").run_id)
    assert run.data.metrics["micro_f1"] > 0.8


def test_pyfunc_spans_index_input_text(trained):
    configure_mlflow(trained["settings"])
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/1")

    output = model.predict(pd.DataFrame({"text": TEXTS}))

    assert list(output.columns) == ["spans"]
    found = [json.loads(value) for value in output["spans"]]
    assert len(found) == len(TEXTS)
    assert found[2] == []
    assert [(span["text"], span["type"]) for span in found[0]] == [
        ("Alice", "person"), ("Paris", "location")]
    assert [(span["start"], span["end"]) for span in found[0]] == [(0, 5), (15, 20)]
    for text, spans in zip(TEXTS, found):
        for span in spans:
            assert 0 <= span["start"] < span["end"] <= len(text)
            assert text[span["start"]:span["end"]] == span["text"]
            assert span["type"] in {"person", "location"}
            assert 0.0 <= span["score"] <= 1.0


def test_pyfunc_long_post_params(trained):
    configure_mlflow(trained["settings"])
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/1")
    text = TEXTS[3]

    output = model.predict(pd.DataFrame({"text": [text]}),
                           params={"max_length": 16, "stride": 4, "batch_size": 2})

    spans = json.loads(output["spans"][0])
    locations = [span["start"] for span in spans if span["type"] == "location"]
    assert locations == [match.start() for match in re.finditer("Tokyo", text)]
    for span in spans:
        assert text[span["start"]:span["end"]] == span["text"]


def test_predict_jsonl_keeps_ids_and_errors(trained, tmp_path, monkeypatch):
    source = tmp_path / "posts.jsonl"
    source.write_text(
        json.dumps({"id": "p1", "text": TEXTS[0], "user": "x"}, ensure_ascii=False) + "\n"
        + "{not json\n"
        + json.dumps({"id": "p3"}) + "\n"
        + json.dumps({"text": TEXTS[1]}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    target = tmp_path / "spans.jsonl"
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    # mlflow.set_*_uri also set these variables, which later subprocesses would inherit.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", elsewhere)
    mlflow.set_tracking_uri(elsewhere)
    mlflow.set_registry_uri(elsewhere)

    counts = predict_entities_file(source, target, f"models:/{MODEL}/1", trained["settings"])

    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert counts == (4, 2)
    assert [row["id"] for row in rows] == ["p1", 2, "p3", 4]
    assert rows[0]["input_fields"] == {"user": "x"}
    assert "invalid JSON" in rows[1]["error"]
    assert "text" in rows[2]["error"]
    for row, text in ((rows[0], TEXTS[0]), (rows[3], TEXTS[1])):
        assert isinstance(row["spans"], list)
        assert all(text[s["start"]:s["end"]] == s["text"] for s in row["spans"])


def test_predict_csv_uses_line_numbers(trained, tmp_path):
    source = tmp_path / "posts.csv"
    source.write_text('text,extra\n"Maria\nin Berlin",1\nTokyo,2\n', encoding="utf-8")
    target = tmp_path / "spans.jsonl"

    predict_entities_file(source, target, f"models:/{MODEL}/1", trained["settings"])

    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == [2, 4]
    assert all("spans" in row for row in rows)


def test_predict_conll_appends_tag_column(trained, tmp_path):
    source = tmp_path / "input.conll"
    source.write_text(
        "-DOCSTART-\n\nAlice\tB-person\nflew\tO\nto\tO\nParis\tB-location\n\n"
        "Tom\nHanks\nin\n北\n京\n\n\nsaw Maria\n",
        encoding="utf-8",
    )
    target = tmp_path / "output.conll"

    counts = predict_entities_file(source, target, f"models:/{MODEL}/1", trained["settings"])

    before = source.read_text(encoding="utf-8").splitlines()
    after = target.read_text(encoding="utf-8").splitlines()
    assert counts == (3, 0)
    assert len(after) == len(before)
    for old, new in zip(before, after):
        if not old or old.startswith("-DOCSTART-"):
            assert new == old
            continue
        assert new.startswith(old)
        separator = "\t" if "\t" in old else " "
        assert len(new.split(separator)) == len(old.split(separator)) + 1
        assert check_tag(new.split(separator)[-1])


def test_predict_without_champion_raises(trained, tmp_path):
    source = tmp_path / "posts.jsonl"
    source.write_text(json.dumps({"text": "hi"}) + "\n")
    with pytest.raises(LookupError, match="champion"):
        predict_entities_file(source, tmp_path / "out.jsonl", None, trained["settings"])


def test_train_rejects_untagged_data(tmp_path, settings):
    path = tmp_path / "plain.conll"
    write_conll(path, [TaggedPost(["just", "words"], ["O", "O"])])
    with pytest.raises(ValueError, match="no entities"):
        train_entities_from_files(path, path, settings)


def test_early_stopping_waits_for_entities():
    stopping = EntityEarlyStopping(early_stopping_patience=2)
    arguments = SimpleNamespace(greater_is_better=True)

    for best, value in ((None, 0.0), (0.0, 0.0), (0.0, 0.0)):
        stopping.check_metric_value(arguments, SimpleNamespace(best_metric=best), None, value)
    assert stopping.early_stopping_patience_counter == 0

    stopping.check_metric_value(arguments, SimpleNamespace(best_metric=0.0), None, 0.3)
    assert stopping.early_stopping_patience_counter == 0
    stopping.check_metric_value(arguments, SimpleNamespace(best_metric=0.3), None, 0.2)
    assert stopping.early_stopping_patience_counter == 1


# The gate and scoring tests set the champion alias, so they come after the tests that
# need a registry without one.

def test_gate_promotes_first_tagger_then_rejects_regression(trained, register_candidate):
    settings = trained["settings"]
    client = configure_mlflow(settings)

    first = jobs.promote("entities", settings)
    assert first["promoted"], first["reasons"]
    assert re.fullmatch(r"span F1 [01]\.\d{4} >= floor 0\.3", first["reasons"][0])
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"

    worse = register_candidate(client, MODEL, {"micro_f1": 0.31})
    decision = jobs.promote("entities", settings)

    assert decision["candidate"] == worse
    assert not decision["promoted"]
    # The champion was measured again on the candidate's frozen CoNLL set.
    champion_f1 = decision["metrics"]["champion_micro_f1"]
    assert champion_f1 > 0.8
    assert decision["status"] == "rejected"
    assert any(reason.endswith("regression (tolerance 0.0)") for reason in decision["reasons"])
    # Version 1 found every person and location; the copy reports nothing per type, so
    # only the main metric is compared.
    assert "per-class F1 within 0.1 of the champion" in decision["reasons"]
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    assert client.get_model_version(MODEL, worse).tags["promotion_decision"] == "rejected"


def test_gate_refuses_a_model_of_another_kind(trained, register_candidate):
    settings = trained["settings"]
    client = configure_mlflow(settings)
    register_candidate(client, MODEL, {"macro_f1": 0.9})
    with pytest.raises(ValueError, match="no metric 'micro_f1'"):
        jobs.promote("entities", settings)


def test_scores_carry_spans_and_index_positions(trained):
    settings = trained["settings"]
    client = configure_mlflow(settings)
    client.set_registered_model_alias(MODEL, "champion", "1")
    store = storage.open_store(settings.store)
    posts = pd.DataFrame({"id": ["a", "b", "c"], "text": [TEXTS[0], TEXTS[1], "nothing here"]})
    storage.write_frame(store, CLEAN, SCORE_DAY, posts)
    build_index(SCORE_DAY, settings)

    # Two posts per shard: the three posts are scored in two shards and joined in order.
    sharded = settings.model_copy(update={"score": settings.score.model_copy(
        update={"shard_size": 2})})
    result = jobs.score_posts(SCORE_DAY, sharded)

    scores = storage.read_frame(store, "scores", SCORE_DAY)
    assert result["count"] == 3
    assert result["shards"] == 2
    assert list(scores["id"]) == ["a", "b", "c"]
    assert result["models"]["entities"] == "1"
    assert result["models"]["retrieval"] == settings.base_model_path
    assert "label" not in scores.columns  # sentiment has no champion in this registry
    spans = [json.loads(value) for value in scores["entities"]]
    assert [(s["text"], s["type"]) for s in spans[0]] == [("Alice", "person"), ("Paris", "location")]
    assert spans[2] == []
    assert list(scores["embedding_position"]) == [0, 1, 2]
    assert json.loads(scores["model_versions"][0]) == result["models"]
    assert store.exists(storage.partition_key("validations", SCORE_DAY, "scores.json"))

    # New clean posts make the old index stale: positions are left empty, not wrong.
    storage.write_frame(store, CLEAN, SCORE_DAY, posts.iloc[::-1])
    jobs.score_posts(SCORE_DAY, settings)
    rescored = storage.read_frame(store, "scores", SCORE_DAY)
    assert len(rescored) == 3
    assert rescored["embedding_position"].isna().all()


def test_scoring_without_any_champion_raises(settings):
    with pytest.raises(NoChampionError, match="none of the scoring tasks"):
        jobs.score_posts(SCORE_DAY, settings)
