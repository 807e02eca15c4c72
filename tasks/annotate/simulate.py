"""Stand-in annotators for the demo and the tests: finish exported tasks with known answers.

Each function returns what the tool itself exports once annotators are done, so the
import reads it exactly as it reads a real export.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.annotate.formats import ENTITIES
from tasks.extract.conll import DOCSTART
from tasks.extract.spans import Span, spans_to_tags

# An answer is a label (sentiment) or a list of (start, end, type) spans (entities).
Answers = Mapping[str, Mapping[str, Any]]  # annotator -> post id -> answer


def complete_label_studio_tasks(
    tasks: list[dict[str, Any]], gold: dict[str, str], annotator: str = "demo-annotator"
) -> list[dict[str, Any]]:
    """Return a Label Studio export for ``tasks``, each completed with its ``gold`` label.

    Tasks whose post id has no gold label are left without an annotation, as an annotator
    would skip them.
    """
    return annotate_label_studio(tasks, {annotator: gold})


def annotate_label_studio(tasks: Sequence[dict[str, Any]], answers: Answers,
                          updated_at: str | None = None) -> list[dict[str, Any]]:
    """Return a Label Studio JSON export of ``tasks`` with one annotation per answer."""
    updated_at = updated_at or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    exported, number = [], 0
    for task_id, task in enumerate(tasks, start=1):
        data = task["data"]
        annotations = []
        for annotator, labels_by_post in answers.items():
            if data.get("post_id") not in labels_by_post:
                continue
            number += 1
            annotations.append({
                "id": number, "completed_by": {"email": annotator}, "was_cancelled": False,
                "created_at": updated_at, "updated_at": updated_at,
                "result": _results(data, labels_by_post[data["post_id"]]),
            })
        exported.append({"id": task_id, "data": data, "annotations": annotations,
                         "predictions": task.get("predictions", [])})
    return exported


def _results(data: dict[str, Any], answer: Any) -> list[dict[str, Any]]:
    if data.get("task") == ENTITIES:
        return [{"from_name": ENTITIES, "to_name": "text", "type": "labels", "origin": "manual",
                 "value": {"start": start, "end": end, "text": data["text"][start:end],
                           "labels": [kind]}}
                for start, end, kind in answer]
    return [{"from_name": data.get("task") or "sentiment", "to_name": "text", "type": "choices",
             "origin": "manual", "value": {"choices": [answer]}}]


def annotate_doccano(lines: str, answers: Answers) -> dict[str, str]:
    """Return doccano's per-user JSONL exports (user name -> file text) for an import file.

    As doccano does without collaborative annotation, every user's file lists every
    example, with an empty label list where that user gave no answer.
    """
    records = [json.loads(line) for line in lines.splitlines() if line.strip()]
    files = {}
    for annotator, labels_by_post in answers.items():
        exported = []
        for example_id, record in enumerate(records, start=1):
            meta = {key: value for key, value in record.items()
                    if key not in ("text", "label")}
            answer = labels_by_post.get(record.get("post_id"))
            if answer is None:
                label = []
            elif record.get("task") == ENTITIES:
                label = [list(span) for span in answer]
            else:
                label = [answer]
            exported.append({"id": example_id, "text": record["text"], **meta, "label": label})
        files[annotator] = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in exported)
    return files


def annotate_conll(exported: str, texts: Mapping[str, str],
                   spans: Mapping[str, Sequence[tuple[int, int, str]]]) -> str:
    """Return an exported CoNLL file with each post's tags replaced by ``spans``.

    Posts without an entry in ``spans`` keep the tags they were exported with.
    """
    blocks = []
    for block in exported.strip("\n").split("\n\n"):
        header, *token_lines = block.split("\n")
        post_id = header.split("\t")[1]
        if post_id in spans:
            tokens, tags = spans_to_tags(texts[post_id], [Span(*s) for s in spans[post_id]])
            token_lines = [f"{token.text}\t{tag}" for token, tag in zip(tokens, tags)]
        blocks.append("\n".join([f"{DOCSTART}\t{post_id}", *token_lines]) + "\n")
    return "\n".join(blocks)


def write_export(exported: list[dict[str, Any]], inbox: Path, day: dt.date) -> Path:
    """Write a Label Studio export into the label inbox and return its path."""
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / f"label-studio-export-{day.isoformat()}.json"
    path.write_text(json.dumps(exported, ensure_ascii=False, indent=1))
    return path
