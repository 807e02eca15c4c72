"""Train classifiers on the public labeled sets and compare configurations in one run.

Runs, each in a fresh Social Pulse home under a temporary folder:
- tweeteval-emotion with full fine-tuning and with LoRA (quality and training time),
- weibo-emotion-zh with and without extending the vocabulary by the Chinese characters the
  bundled English tokenizer maps to [UNK].

Usage: python bench/train_compare.py --data ../shared/data [--output docs/benchmarks-train.json]
       [--max-train-samples N] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

RUNS = {
    "emotion-full": ("tweeteval-emotion", "emotion", {"PULSE_TRAIN__METHOD": "full"}),
    "emotion-lora": ("tweeteval-emotion", "emotion",
                     {"PULSE_TRAIN__METHOD": "lora"}),
    "weibo-extended-vocabulary": ("weibo-emotion-zh", "weibo_emotion",
                                  {"PULSE_TRAIN__EXTEND_VOCABULARY": "true"}),
    "weibo-base-vocabulary": ("weibo-emotion-zh", "weibo_emotion",
                              {"PULSE_TRAIN__EXTEND_VOCABULARY": "false"}),
}


def run_one(name: str, data: Path, max_train_samples: int) -> dict:
    folder, task, environment = RUNS[name]
    with tempfile.TemporaryDirectory(prefix=f"pulse-{name}-") as home:
        os.environ.update({"PULSE_HOME": home, **environment,
                           "PULSE_TRAIN__MAX_TRAIN_SAMPLES": str(max_train_samples)})
        from mlflow import MlflowClient

        from tasks.commands import train_from_files
        from tasks.settings import reload_settings

        settings = reload_settings()
        started = time.perf_counter()
        uri = train_from_files(data / folder / "train.jsonl", data / folder / "validation.jsonl",
                               settings, task=task)
        seconds = time.perf_counter() - started
        name_, version = uri.removeprefix("models:/").split("/")
        client = MlflowClient(settings.tracking_uri)
        metrics = client.get_run(client.get_model_version(name_, version).run_id).data.metrics
        for key in environment:
            os.environ.pop(key, None)
    return {"run": name, "data": folder, "seconds": round(seconds, 1),
            "train_seconds": round(metrics["train_seconds"], 1),
            **{key: round(metrics[key], 4) for key in ("macro_f1", "macro_recall", "accuracy")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the labeled sets")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--max-train-samples", type=int, default=0, help="0 means all")
    parser.add_argument("--only", choices=sorted(RUNS), action="append", help="run only these")
    arguments = parser.parse_args()
    results = []
    for name in arguments.only or RUNS:
        results.append(run_one(name, arguments.data, arguments.max_train_samples))
        print(json.dumps(results[-1]), flush=True)
        if arguments.output:
            arguments.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
