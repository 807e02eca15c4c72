"""Label Studio: labeling configs, JSON tasks with predictions, and reading JSON exports.

Classification uses a ``Choices`` control named after the task and entities a ``Labels``
control named ``entities``, both over a ``Text`` object named ``text``. Pre-annotations go
into each task's ``predictions`` list with ``model_version`` and ``score``, as described
in Label Studio's guide "Import pre-annotated data into Label Studio".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

from tasks.annotate.formats import ENTITIES, SENTIMENT, Prediction, annotation_row, task_data
from tasks.extract.spans import annotation_spans

log = logging.getLogger(__name__)

TEXT_NAME = "text"


def choices_config(labels: Sequence[str], name: str = SENTIMENT) -> str:
    """Return a labeling config for one text and a single choice among ``labels``."""
    choices = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
    return (
        "<View>\n"
        f'  <Text name="{TEXT_NAME}" value="$text"/>\n'
        f"  <Choices name={quoteattr(name)} toName=\"{TEXT_NAME}\" choice=\"single\" "
        'showInLine="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def labels_config(types: Sequence[str], name: str = ENTITIES) -> str:
    """Return a labeling config for marking spans of ``types`` in one text."""
    labels = "\n".join(f"    <Label value={quoteattr(kind)}/>" for kind in types)
    return (
        "<View>\n"
        f"  <Labels name={quoteattr(name)} toName=\"{TEXT_NAME}\">\n"
        f"{labels}\n"
        "  </Labels>\n"
        f'  <Text name="{TEXT_NAME}" value="$text"/>\n'
        "</View>\n"
    )


def build_tasks(posts: Sequence[dict[str, Any]], task: str,
                predictions: Sequence[Prediction | None] | None = None) -> list[dict[str, Any]]:
    """Return Label Studio tasks for ``posts``, with each post's prediction when there is one."""
    predictions = predictions or [None] * len(posts)
    tasks = []
    for post, predicted in zip(posts, predictions, strict=True):
        entry: dict[str, Any] = {"data": task_data(post, task)}
        if predicted is not None:
            entry["predictions"] = [_prediction(post, task, predicted)]
        tasks.append(entry)
    return tasks


def _prediction(post: dict[str, Any], task: str, predicted: Prediction) -> dict[str, Any]:
    if task == ENTITIES:
        results = [_span_result(post, number, span)
                   for number, span in enumerate(predicted.spans or [], start=1)]
    else:
        results = [{"id": f"{post['id']}-1", "from_name": task, "to_name": TEXT_NAME,
                    "type": "choices", "value": {"choices": [predicted.label]}}]
    entry: dict[str, Any] = {"model_version": predicted.model_version, "result": results}
    if predicted.score is not None:
        entry["score"] = predicted.score
    return entry


def _span_result(post: dict[str, Any], number: int, span: dict[str, Any]) -> dict[str, Any]:
    # NOTE: offsets are Python string indices (code points). Some Label Studio releases
    # count UTF-16 code units instead, which shifts spans after an emoji when they display.
    value = {"start": span["start"], "end": span["end"],
             "text": post["text"][span["start"]:span["end"]], "labels": [span["type"]]}
    result = {"id": f"{post['id']}-{number}", "from_name": ENTITIES, "to_name": TEXT_NAME,
              "type": "labels", "value": value}
    if span.get("score") is not None:
        result["score"] = span["score"]
    return result


def read_export(tasks: Any, default_annotator: str) -> list[dict[str, Any]]:
    """Return one annotation row per task, annotator and annotation task in a JSON export.

    Each annotator's latest annotation that was not cancelled counts. A task without one
    gives a single row with no label, which import quarantines. The annotation task comes
    from ``data.task`` when the export has it, else from the result types: ``choices``
    for sentiment and ``labels`` for entities. An annotation without ``completed_by`` is
    attributed to ``default_annotator``.
    """
    if not isinstance(tasks, list):
        # ValueError, not TypeError: the file content is invalid, and import reports it.
        raise ValueError(f"expected a list of tasks, got {type(tasks).__name__}")  # noqa: TRY004
    rows = []
    for line, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            rows.append(annotation_row(line, parse_error="item is not a task object"))
            continue
        rows.extend(_task_rows(task, line, default_annotator))
    return rows


def _task_rows(task: dict[str, Any], line: int, default_annotator: str) -> list[dict[str, Any]]:
    data = task.get("data") or {}
    text, declared = data.get("text"), data.get("task")
    base = {"text": text, "post_id": data.get("post_id")}
    latest = _latest_by_annotator(task.get("annotations") or [], default_annotator)
    if not latest:
        return [annotation_row(line, task=declared or SENTIMENT, **base)]

    rows = []
    for annotator, annotation in latest.items():
        results = annotation.get("result") or []
        annotated_at = annotation.get("updated_at") or annotation.get("created_at")
        for kind in _annotation_tasks(declared, results):
            row = annotation_row(line, task=kind, annotator=annotator,
                                 annotated_at=annotated_at, **base)
            if kind == ENTITIES and isinstance(text, str):
                try:
                    row["spans"] = _spans(text, results)
                except (KeyError, TypeError, ValueError) as error:
                    row["parse_error"] = f"invalid span result: {error!r}"
            elif kind == SENTIMENT:
                row["label"] = first_choice(results)
            rows.append(row)
    return rows


def _latest_by_annotator(annotations: list[dict[str, Any]],
                         default_annotator: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    finished = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    for annotation in sorted(finished, key=lambda a: a.get("updated_at") or ""):
        latest[annotator_name(annotation) or default_annotator] = annotation
    return latest


def _annotation_tasks(declared: str | None, results: list[dict[str, Any]]) -> list[str]:
    if declared in (SENTIMENT, ENTITIES):
        return [declared]
    kinds = {result.get("type") for result in results if isinstance(result, dict)}
    found = [kind for kind, tool in ((SENTIMENT, "choices"), (ENTITIES, "labels"))
             if tool in kinds]
    return found or [SENTIMENT]


def _spans(text: str, results: list[dict[str, Any]]) -> list[list[Any]]:
    return [[span.start, span.end, span.type] for span in annotation_spans(text, results)]


def first_choice(results: list[dict[str, Any]]) -> str | None:
    """Return the first choice of the first ``choices`` result, or None."""
    for result in results:
        choices = result.get("value", {}).get("choices")
        if result.get("type") == "choices" and choices:
            return choices[0]
    return None


def annotator_name(annotation: dict[str, Any] | None) -> str | None:
    """Return who completed ``annotation``: the e-mail or id of ``completed_by``, or None."""
    if not annotation:
        return None
    person = annotation.get("completed_by")
    if isinstance(person, dict):
        person = person.get("email") or person.get("id")
    return None if person is None else str(person)
