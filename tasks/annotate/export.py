"""Export the day's chosen clean posts as annotation tasks for Label Studio, doccano or CoNLL.

The posts are chosen within the budget by tasks.annotate.select (random, uncertainty or
active). Each Label Studio task and doccano line records the strategy that chose its post
(``selected_by``) and the post's uncertainty under the sentiment champion (``uncertainty``).
The export reads ``clean_posts``, whose text is already masked, and masks it once more
before anything is written, so no handle, e-mail address or phone number leaves even if
cleaning missed one. The files go to the ``annotation_tasks`` partition of the day, beside
a Parquet list of the exported posts (id, text, lang) that CoNLL import uses to place tags.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from tasks import storage
from tasks.annotate.formats import ENTITIES, SENTIMENT, Prediction
from tasks.annotate.formats.conll import build_conll
from tasks.annotate.formats.doccano import build_lines
from tasks.annotate.formats.label_studio import build_tasks, choices_config, labels_config
from tasks.annotate.preannotate import Champion, predict_posts
from tasks.annotate.select import (
    ACTIVE,
    ENTROPY,
    SELECTED_BY,
    UNCERTAINTY_SCORE,
    Embed,
    champion_probabilities,
    select_posts,
)
from tasks.clean.text import mask_personal_data

log = logging.getLogger(__name__)

ANNOTATION_TASKS = "annotation_tasks"
LABEL_STUDIO, DOCCANO, CONLL = "label_studio", "doccano", "conll"
EXPORT_FORMATS = (LABEL_STUDIO, DOCCANO, CONLL)
MAX_LOGGED_POSTS = 10


def export_file_name(task: str, export_format: str, config: bool = False) -> str:
    """Return the file name of ``task``'s export for ``export_format`` in the partition."""
    if export_format == CONLL:
        return f"{task}.conll"
    if export_format == DOCCANO:
        return f"{task}.doccano.jsonl"
    return f"{task}.label_studio.{'xml' if config else 'json'}"


def exportable_tasks(tasks: Sequence[str], formats: Sequence[str]) -> list[str]:
    """Return the ``tasks`` that at least one of ``formats`` can carry (CoNLL: entities only).

    Raises ValueError naming any format that is not one of EXPORT_FORMATS.
    """
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown:
        raise ValueError(f"unknown export formats {unknown}: use {list(EXPORT_FORMATS)}")
    return [task for task in tasks
            if task == ENTITIES or set(formats) & {LABEL_STUDIO, DOCCANO}]


def recheck_masking(posts: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Mask the text of ``posts`` again and return the posts and the count of changed texts.

    Each changed post is logged by id (the first ten of them), never with its text.
    """
    masked = posts["text"].map(mask_personal_data)
    changed = masked != posts["text"]
    for post_id in posts.loc[changed, "id"].head(MAX_LOGGED_POSTS):
        log.warning("post %s still contained a handle, e-mail address or phone number after "
                    "cleaning: masked again before export", post_id)
    return posts.assign(text=masked), int(changed.sum())


def export_for_labeling(
    store: storage.Store, day: dt.date, clean: pd.DataFrame, size: int,
    labels: Sequence[str], seed: int = 0, *,
    formats: Sequence[str] = (LABEL_STUDIO,), tasks: Sequence[str] = (SENTIMENT,),
    entity_types: Sequence[str] = (), champions: Mapping[str, Champion | None] | None = None,
    strategy: str = ACTIVE, measure: str = ENTROPY, pool_factor: int = 5,
    embed: Embed | None = None,
) -> dict[str, Any]:
    """Write up to ``size`` posts of ``clean``, chosen by ``strategy``, as annotation tasks.

    ``size`` is the day's budget. The sentiment champion's probabilities drive the
    'uncertainty' and 'active' strategies, and ``embed`` gives 'active' its embeddings
    (see tasks.annotate.select). Without a sentiment champion the posts are chosen at
    random. A random choice is seeded by ``seed`` and the date, so a rerun exports the
    same posts. ``champions`` maps a task to the model that pre-annotates it. A task
    without one is exported without pre-annotations. CoNLL files are written for
    entities only, and they carry no selection metadata.
    """
    tasks = exportable_tasks(tasks, formats)
    chosen, strategy_used = choose_posts(clean, size, labels, (champions or {}).get(SENTIMENT),
                                         strategy=strategy, measure=measure,
                                         pool_factor=pool_factor, embed=embed,
                                         seed=seed + day.toordinal())
    posts, remasked = recheck_masking(chosen.sort_values("id").reset_index(drop=True))
    storage.write_frame(store, ANNOTATION_TASKS, day, posts[["id", "text", "lang"]])
    records = posts.assign(partition=day.isoformat()).to_dict("records")

    files: dict[str, str] = {}
    pre_annotated: dict[str, str | None] = {}
    for task in tasks:
        champion = (champions or {}).get(task)
        predictions = None
        if champion is not None:
            texts = [record["text"] for record in records]
            predictions = predict_posts(champion, task, texts, entity_types)
        pre_annotated[task] = champion.model_version if champion else None
        kinds = labels if task == SENTIMENT else entity_types
        files.update(_write_task_files(store, day, task, records, predictions, formats, kinds))

    log.info("exported %d of %d clean posts of %s for %s in %s, selected by %s (%d masked "
             "again)", len(records), len(clean), day, list(tasks), list(formats),
             strategy_used, remasked)
    return {"count": len(records), "remasked": remasked, "files": files,
            "pre_annotated": pre_annotated, "selected_by": strategy_used}


def choose_posts(clean: pd.DataFrame, size: int, labels: Sequence[str],
                 champion: Champion | None, **options: Any) -> tuple[pd.DataFrame, str]:
    """Return the posts of ``clean`` to export and the strategy that chose them.

    ``champion`` is the sentiment champion, or None. ``options`` are the keyword
    arguments of :func:`tasks.annotate.select.select_posts`. The strategy is 'none' when
    no post was chosen.
    """
    probabilities = None
    if champion is not None:
        # Scored even when the budget covers every post, so each task records its uncertainty.
        probabilities = champion_probabilities(champion, list(clean["text"]), labels)
    chosen = select_posts(clean, size, probabilities=probabilities, **options)
    strategy_used = str(chosen[SELECTED_BY].iloc[0]) if len(chosen) else "none"
    return chosen, strategy_used


def _write_task_files(store: storage.Store, day: dt.date, task: str,
                      posts: list[dict[str, Any]], predictions: list[Prediction] | None,
                      formats: Sequence[str], kinds: Sequence[str]) -> dict[str, str]:
    """Write ``task``'s files for each format and return their URIs by file name."""
    contents: dict[str, str] = {}
    if LABEL_STUDIO in formats:
        tasks = build_tasks(posts, task, predictions)
        for entry, post in zip(tasks, posts, strict=True):
            entry["data"].update(selection_fields(post))
        config = labels_config(kinds) if task == ENTITIES else choices_config(kinds, task)
        contents[export_file_name(task, LABEL_STUDIO)] = json.dumps(tasks, ensure_ascii=False,
                                                                    indent=1)
        contents[export_file_name(task, LABEL_STUDIO, config=True)] = config
    if DOCCANO in formats:
        lines = build_lines(posts, task, predictions)
        contents[export_file_name(task, DOCCANO)] = _add_selection_to_lines(lines, posts)
    if CONLL in formats and task == ENTITIES:
        contents[export_file_name(task, CONLL)] = build_conll(posts, predictions)

    uris = {}
    for name, text in contents.items():
        key = storage.partition_key(ANNOTATION_TASKS, day, name)
        store.write_bytes(key, text.encode())
        uris[name] = store.uri(key)
    return uris


def selection_fields(post: Mapping[str, Any]) -> dict[str, Any]:
    """Return the selection metadata of an exported post: strategy and uncertainty score."""
    score = post.get(UNCERTAINTY_SCORE)
    missing = score is None or pd.isna(score)
    return {SELECTED_BY: post.get(SELECTED_BY),
            UNCERTAINTY_SCORE: None if missing else round(float(score), 4)}


def _add_selection_to_lines(lines: str, posts: Sequence[Mapping[str, Any]]) -> str:
    # Split at LF only: a JSON string may contain U+2028, where str.splitlines would split.
    records = [json.loads(line) for line in lines.split("\n") if line]
    for record, post in zip(records, posts, strict=True):
        record.update(selection_fields(post))
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def exported_texts(store: storage.Store) -> dict[str, str]:
    """Return the text of every exported post by id. A later export of a post wins."""
    texts: dict[str, str] = {}
    for day in storage.list_partitions(store, ANNOTATION_TASKS):
        key = storage.partition_key(ANNOTATION_TASKS, day)
        if store.exists(key):  # exports written before the post list have JSON files only
            frame = storage.read_frame(store, ANNOTATION_TASKS, day)
            texts.update(zip(frame["id"].astype(str), frame["text"]))
    return texts
