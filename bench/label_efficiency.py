"""Measure macro-recall against labels used, for random and for active selection of posts.

A simulated annotator labels every chosen post with its gold label from the training
file. For each seed, a random seed set of the first size is labeled and trained on once,
and that model starts both strategies. Each further round grows the labeled set to the
next size:

- random: a seeded random sample of the posts not labeled yet,
- active: tasks.annotate.select with strategy 'active'. The champion is the model of the
  previous round, and the embeddings come from the bundled base model. The uncertainty
  measure and pool factor come from the annotation settings.

Each round fine-tunes the base model from scratch with tasks.train.classifier and
measures macro-recall on the validation file. The epoch is picked on that same file, as
`pulse train` does, so the numbers are slightly optimistic, equally for both strategies.

Self-training, once, on the first seed: the random run's model at --self-training-labels
human labels predicts the remaining training texts (their gold labels unused).
tasks.annotate.pseudo keeps the confident predictions, capped per class, and a model
trained on human plus pseudo labels is compared with the human-only one.

Results go to --output-dir (JSON, PNG plot, Markdown table) and to the MLflow
experiment "label-efficiency" of the configured tracking store.

Usage: python bench/label_efficiency.py [--data ../shared/data/sentiment-en]
       [--sizes 100,200,400,800] [--seeds 0,1,2] [--epochs 3] [--batch-size 8] [--max-length 64]
       [--output-dir DIR] [--self-training-labels N] [--pseudo-threshold P]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "sentiment-en"
EXPERIMENT = "label-efficiency"
RANDOM, ACTIVE = "random", "active"


@dataclass
class RoundResult:
    """Validation metrics of one trained model, and its probabilities on the unlabeled posts."""

    metrics: dict[str, float]
    unlabeled_probabilities: np.ndarray | None
    seconds: float


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with train.jsonl and validation.jsonl (text, label)")
    parser.add_argument("--sizes", default="100,200,400,800",
                        help="labels used after each round, comma-separated and increasing")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one run each")
    parser.add_argument("--epochs", type=float, default=3.0, help="training epochs per round")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="training batch size; small, so that 100 labels still give "
                        "enough optimizer steps (warm-up is off in this benchmark)")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per post")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="folder for results (default: <home>/bench/label-efficiency)")
    parser.add_argument("--self-training-labels", type=int, default=0,
                        help="human labels of the self-training run, one of --sizes "
                        "(default: the largest); -1 skips self-training")
    parser.add_argument("--pseudo-threshold", type=float, default=None,
                        help="minimum confidence of a pseudo label (default: "
                        "annotation.pseudo_label_threshold)")
    arguments = parser.parse_args()
    arguments.sizes = [int(size) for size in arguments.sizes.split(",")]
    arguments.seeds = [int(seed) for seed in arguments.seeds.split(",")]
    if arguments.sizes != sorted(set(arguments.sizes)) or arguments.sizes[0] < 2:
        parser.error(f"--sizes must be increasing and start at 2 or more, got {arguments.sizes}")
    if arguments.self_training_labels == 0:
        arguments.self_training_labels = arguments.sizes[-1]
    if arguments.self_training_labels not in (-1, *arguments.sizes):
        parser.error(f"--self-training-labels must be one of --sizes {arguments.sizes} or -1")
    return arguments


def train_round(labeled: pd.DataFrame, validation: pd.DataFrame, unlabeled: pd.DataFrame | None,
                labels: list[str], settings: Any, config: Any) -> RoundResult:
    """Fine-tune on ``labeled`` and return validation metrics and probabilities on ``unlabeled``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tasks.evaluate.classification import classification_metrics
    from tasks.score.inference import pick_device, predict_probabilities
    from tasks.train.classifier import train_classifier

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pulse-label-efficiency-") as folder:
        trained = train_classifier(labeled[["text", "label"]], validation, labels,
                                   settings.base_model_path, config, Path(folder))
        tokenizer = AutoTokenizer.from_pretrained(trained.model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(trained.model_dir)
        model = model.to(pick_device())
        predicted = predict_probabilities(model, tokenizer, list(validation["text"]),
                                          max_length=config.max_length).argmax(axis=1)
        metrics = classification_metrics(list(validation["label"]),
                                         [labels[i] for i in predicted], labels)
        probabilities = None
        if unlabeled is not None:
            probabilities = predict_probabilities(model, tokenizer, list(unlabeled["text"]),
                                                  max_length=config.max_length)
    return RoundResult(metrics, probabilities, time.perf_counter() - started)


def run_seed(seed: int, pool: pd.DataFrame, validation: pd.DataFrame, labels: list[str],
             embed: Any, arguments: argparse.Namespace, settings: Any) -> tuple[list[dict], dict]:
    """Run both strategies for one seed and return round records and the self-training inputs."""
    from tasks.annotate.select import select_posts

    config = settings.train.model_copy(update={"epochs": arguments.epochs, "seed": seed,
                                               "max_length": arguments.max_length,
                                               "batch_size": arguments.batch_size,
                                               "warmup_steps": 0})
    annotation = settings.annotation
    sizes = arguments.sizes

    # Round 0: one random seed set, trained once, starts both strategies.
    seed_set = pool.loc[select_posts(pool, sizes[0], RANDOM, seed=seed).index]
    first = train_round(seed_set, validation, pool.drop(seed_set.index), labels, settings,
                        config)
    records = [round_record(seed, strategy, sizes[0], first) for strategy in (RANDOM, ACTIVE)]
    print_round(records[0], "random and active")
    self_training: dict[str, Any] = {}

    for strategy in (RANDOM, ACTIVE):
        labeled, result = seed_set, first
        for number, size in enumerate(sizes[1:], start=1):
            unlabeled = pool.drop(labeled.index)
            if strategy == RANDOM:
                chosen = select_posts(unlabeled, size - len(labeled), RANDOM,
                                      seed=seed * 1000 + number)
            else:
                chosen = select_posts(unlabeled, size - len(labeled), ACTIVE,
                                      probabilities=result.unlabeled_probabilities,
                                      embed=embed, measure=annotation.uncertainty_measure,
                                      pool_factor=annotation.candidate_pool_factor, seed=seed)
            labeled = pd.concat([labeled, pool.loc[chosen.index]])
            # The next active round ranks the unlabeled posts by this round's probabilities.
            keep_probabilities = (strategy == ACTIVE and size != sizes[-1]) \
                or size == arguments.self_training_labels
            result = train_round(labeled, validation,
                                 pool.drop(labeled.index) if keep_probabilities else None,
                                 labels, settings, config)
            records.append(round_record(seed, strategy, size, result))
            print_round(records[-1], strategy)
            if strategy == RANDOM and size == arguments.self_training_labels:
                self_training = {"labeled": labeled, "result": result, "config": config}
        if strategy == RANDOM and sizes[0] == arguments.self_training_labels:
            self_training = {"labeled": seed_set, "result": first, "config": config}
    return records, self_training


def run_self_training(inputs: dict[str, Any], pool: pd.DataFrame, validation: pd.DataFrame,
                      labels: list[str], threshold: float, settings: Any) -> dict[str, Any]:
    """Pseudo-label the unlabeled pool with the human-only model and train on both."""
    from tasks.annotate.pseudo import count_by_class, select_pseudo_labels

    labeled, human = inputs["labeled"], inputs["result"]
    unlabeled = pool.drop(labeled.index)
    if human.unlabeled_probabilities is None:
        human = train_round(labeled, validation, unlabeled, labels, settings, inputs["config"])
    pseudo = select_pseudo_labels(unlabeled, human.unlabeled_probabilities, labels, threshold,
                                  settings.annotation.pseudo_label_max_per_class)
    gold = unlabeled.set_index("id")["label"]
    correct = int((pseudo["label"].to_numpy() == gold.loc[pseudo["post_id"]].to_numpy()).sum())
    record: dict[str, Any] = {
        "human_labels": len(labeled), "threshold": threshold,
        "unlabeled_posts": len(unlabeled), "pseudo_labels": len(pseudo),
        "pseudo_by_class": count_by_class(pseudo, labels),
        "pseudo_label_accuracy": round(correct / len(pseudo), 4) if len(pseudo) else None,
        "macro_recall_human_only": round(human.metrics["macro_recall"], 4),
    }
    if pseudo.empty:
        print(f"self-training: no prediction reached confidence {threshold}: nothing to add",
              flush=True)
        record["macro_recall_with_pseudo"] = record["macro_recall_human_only"]
        return record

    combined = pd.concat([labeled[["text", "label"]], pseudo[["text", "label"]]],
                         ignore_index=True)
    result = train_round(combined, validation, None, labels, settings, inputs["config"])
    record.update(macro_recall_with_pseudo=round(result.metrics["macro_recall"], 4),
                  macro_f1_with_pseudo=round(result.metrics["macro_f1"], 4),
                  seconds=round(result.seconds, 1))
    print(f"self-training: {len(labeled)} human + {len(pseudo)} pseudo labels "
          f"(accuracy against gold {record['pseudo_label_accuracy']}): macro-recall "
          f"{record['macro_recall_human_only']:.3f} -> {record['macro_recall_with_pseudo']:.3f}",
          flush=True)
    return record


def round_record(seed: int, strategy: str, labels_used: int, result: RoundResult) -> dict:
    return {"seed": seed, "strategy": strategy, "labels": labels_used,
            "macro_recall": round(result.metrics["macro_recall"], 4),
            "macro_f1": round(result.metrics["macro_f1"], 4),
            "accuracy": round(result.metrics["accuracy"], 4),
            "seconds": round(result.seconds, 1)}


def print_round(record: dict, strategy: str) -> None:
    print(f"seed {record['seed']} {strategy}: {record['labels']} labels, macro-recall "
          f"{record['macro_recall']:.3f}, macro-F1 {record['macro_f1']:.3f} "
          f"({record['seconds']:.0f} s)", flush=True)


def summarize(records: list[dict]) -> list[dict]:
    """Return mean, standard deviation, minimum and maximum macro-recall per strategy and size."""
    frame = pd.DataFrame(records)
    summary = []
    for (strategy, size), group in frame.groupby(["strategy", "labels"], sort=True):
        values = list(group["macro_recall"])
        summary.append({"strategy": strategy, "labels": int(size), "runs": len(values),
                        "mean": round(statistics.fmean(values), 4),
                        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                        "min": min(values), "max": max(values)})
    return summary


def markdown_table(summary: list[dict], self_training: dict | None) -> str:
    by_key = {(row["strategy"], row["labels"]): row for row in summary}
    sizes = sorted({row["labels"] for row in summary})
    lines = ["| labels | random macro-recall | active macro-recall | active - random |",
             "|---|---|---|---|"]
    for size in sizes:
        random_row, active_row = by_key[(RANDOM, size)], by_key[(ACTIVE, size)]
        lines.append(f"| {size} | {random_row['mean']:.3f} ± {random_row['std']:.3f} | "
                     f"{active_row['mean']:.3f} ± {active_row['std']:.3f} | "
                     f"{active_row['mean'] - random_row['mean']:+.3f} |")
    lines.append("")
    lines.append(f"Mean ± standard deviation over {by_key[(RANDOM, sizes[0])]['runs']} seeds.")
    if self_training:
        header = ("| human labels | pseudo labels (threshold) | pseudo-label accuracy | "
                  "macro-recall, human only | macro-recall, human + pseudo |")
        row = (f"| {self_training['human_labels']} | {self_training['pseudo_labels']} "
               f"({self_training['threshold']}) | {self_training['pseudo_label_accuracy']} | "
               f"{self_training['macro_recall_human_only']:.3f} | "
               f"{self_training['macro_recall_with_pseudo']:.3f} |")
        lines += ["", header, "|---|---|---|---|---|", row]
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], self_training: dict | None) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for strategy, color in ((RANDOM, "tab:gray"), (ACTIVE, "tab:blue")):
        rows = sorted((row for row in summary if row["strategy"] == strategy),
                      key=lambda row: row["labels"])
        sizes = [row["labels"] for row in rows]
        axes.plot(sizes, [row["mean"] for row in rows], marker="o", color=color,
                  label=f"{strategy} (mean)")
        axes.fill_between(sizes, [row["min"] for row in rows], [row["max"] for row in rows],
                          color=color, alpha=0.2, label=f"{strategy} (min to max over seeds)")
    if self_training and self_training["pseudo_labels"]:
        axes.scatter([self_training["human_labels"]], [self_training["macro_recall_with_pseudo"]],
                     marker="*", s=160, color="tab:orange", zorder=3,
                     label=f"self-training (+{self_training['pseudo_labels']} pseudo labels)")
    axes.set_xscale("log", base=2)
    axes.set_xticks(sorted({row["labels"] for row in summary}),
                    [str(size) for size in sorted({row["labels"] for row in summary})])
    axes.set_xlabel("human labels used")
    axes.set_ylabel("macro-recall on validation")
    axes.set_title("Label efficiency, sentiment-en")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def log_to_mlflow(settings: Any, arguments: argparse.Namespace, results: dict, figure: Any,
                  table: str) -> str:
    """Log params, mean macro-recall per round, the plot and the table, and return the run id."""
    import mlflow

    from tasks.registry.tracking import configure_mlflow

    registry = settings.registry.model_copy(update={"experiment": EXPERIMENT})
    configure_mlflow(settings.model_copy(update={"registry": registry}))
    with mlflow.start_run(run_name=EXPERIMENT) as run:
        mlflow.log_params({**results["config"],
                           "sizes": ",".join(map(str, arguments.sizes)),
                           "seeds": ",".join(map(str, arguments.seeds))})
        for row in results["summary"]:
            mlflow.log_metric(f"macro_recall_{row['strategy']}", row["mean"], step=row["labels"])
        self_training = results.get("self_training")
        if self_training:
            mlflow.log_metrics({
                "self_training_macro_recall_human_only": self_training["macro_recall_human_only"],
                "self_training_macro_recall_with_pseudo": self_training["macro_recall_with_pseudo"],
                "self_training_pseudo_labels": self_training["pseudo_labels"]})
        mlflow.log_metric("wall_seconds", results["wall_seconds"])
        mlflow.log_figure(figure, "label_efficiency.png")
        mlflow.log_text(table, "label_efficiency.md")
        mlflow.log_dict(results, "label_efficiency.json")
    return run.info.run_id


def main() -> None:
    arguments = parse_arguments()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tasks.commands import read_labeled_file
    from tasks.retrieve.encoder import load_encoder
    from tasks.settings import get_settings

    started = time.perf_counter()
    settings = get_settings()
    labels = list(settings.classification_tasks["sentiment"])
    output_dir = arguments.output_dir or settings.resolve("bench/label-efficiency")
    output_dir.mkdir(parents=True, exist_ok=True)
    threshold = arguments.pseudo_threshold if arguments.pseudo_threshold is not None \
        else settings.annotation.pseudo_label_threshold

    # Load the data; the pool keeps its gold labels for the simulated annotator.
    pool = read_labeled_file(arguments.data / "train.jsonl", labels)
    pool = pool.assign(id=[f"train-{n:05d}" for n in range(len(pool))])[["id", "text", "label"]]
    validation = read_labeled_file(arguments.data / "validation.jsonl", labels)
    if arguments.sizes[-1] > len(pool):
        raise SystemExit(f"--sizes ends at {arguments.sizes[-1]}, but {arguments.data} has "
                         f"only {len(pool)} training posts")
    print(f"{len(pool)} training posts, {len(validation)} validation posts, sizes "
          f"{arguments.sizes}, seeds {arguments.seeds}", flush=True)

    # Embed every training post once with the base model; active rounds look them up.
    encoder = load_encoder(settings.base_model_path, max_length=settings.retrieval.max_length,
                           batch_size=settings.retrieval.encode_batch_size)
    by_text = dict(zip(pool["text"], encoder.encode(list(pool["text"]))))
    print(f"embedded {len(by_text)} training texts in {time.perf_counter() - started:.0f} s",
          flush=True)

    def embed(texts: list[str]) -> np.ndarray:
        return np.stack([by_text[text] for text in texts])

    # Rounds per seed, then self-training on the first seed's random run.
    records: list[dict] = []
    self_training_inputs: dict[str, Any] = {}
    for seed in arguments.seeds:
        seed_records, inputs = run_seed(seed, pool, validation, labels, embed, arguments,
                                        settings)
        records += seed_records
        self_training_inputs = self_training_inputs or inputs
    self_training = None
    if self_training_inputs:
        self_training = run_self_training(self_training_inputs, pool, validation, labels,
                                          threshold, settings)

    # Write the JSON, the plot and the table, and log them to MLflow.
    summary = summarize(records)
    results = {
        "config": {"data": str(arguments.data), "epochs": arguments.epochs,
                   "batch_size": arguments.batch_size, "warmup_steps": 0,
                   "max_length": arguments.max_length, "base_model": settings.base_model_path,
                   "uncertainty_measure": settings.annotation.uncertainty_measure,
                   "candidate_pool_factor": settings.annotation.candidate_pool_factor,
                   "pseudo_label_threshold": threshold,
                   "pseudo_label_max_per_class": settings.annotation.pseudo_label_max_per_class,
                   "train_posts": len(pool), "validation_posts": len(validation)},
        "rounds": records, "summary": summary, "self_training": self_training,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    table = markdown_table(summary, self_training)
    figure = plot(summary, self_training)
    (output_dir / "label_efficiency.json").write_text(json.dumps(results, indent=2) + "\n")
    (output_dir / "label_efficiency.md").write_text(table)
    figure.savefig(output_dir / "label_efficiency.png", dpi=120)
    run_id = log_to_mlflow(settings, arguments, results, figure, table)
    print(table, flush=True)
    print(f"wrote {output_dir}; MLflow run {run_id} in experiment '{EXPERIMENT}' "
          f"({settings.tracking_uri}); {results['wall_seconds']:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
