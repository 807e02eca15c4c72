"""Benchmark: the batch-scoring task against transformers.pipeline, same model, same posts.

Each variant runs in its own subprocess so that its peak memory (max RSS) is its own:

- scoring: the ``score_posts`` steps as plain functions (plan, one shard per
  ``score.shard_size``, merge): the registered MLflow model loaded by version, length-sorted
  batches under ``torch.inference_mode``, the ``scores`` and ``predictions`` GX suites, one
  Parquet write.
- pipeline: ``transformers.pipeline("text-classification")`` on the same model folder and
  texts, with the same batch size and max length, all class scores returned.

The model is the bundled all-MiniLM-L6-v2 with a fresh three-class head (throughput does
not depend on the head's weights). Each subprocess also measures fp32 matrix multiplication
(GFLOP/s) first, and the report gives the share of it that scoring reaches, counting
2 x (encoder weights outside the embeddings) FLOPs per token, an estimate that leaves out
attention scores and padding.

Usage: python bench/score_bench.py [--posts 20000] [--output docs/benchmarks-score.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY = dt.date(2026, 12, 4)
LABELS = ["negative", "neutral", "positive"]
MODEL = "social-pulse-sentiment"


def matmul_gflops(size: int = 1024, seconds: float = 3.0) -> float:
    """Measure fp32 matrix multiplication throughput of this process, in GFLOP/s."""
    import torch

    left, right = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(left, right)  # warm-up
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.matmul(left, right)
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - started) / 1e9


def prepare(home: Path, posts: int) -> dict:
    """Write the day's clean posts, save the model folder and register it as champion."""
    os.environ["PULSE_HOME"] = str(home)
    import mlflow
    import pandas as pd
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tasks import storage
    from tasks.collect.sample import generate_posts
    from tasks.collect.stage import CLEAN
    from tasks.registry.tracking import configure_mlflow
    from tasks.settings import reload_settings
    from tasks.train.pipeline import _log_model

    settings = reload_settings()
    texts = [post.text for post in generate_posts(DAY, count=posts)]
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(len(texts))], "text": texts})
    storage.write_frame(storage.open_store(settings.store), CLEAN, DAY, frame)

    folder = home / "model"
    tokenizer = AutoTokenizer.from_pretrained(settings.base_model_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        settings.base_model_path, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    client = configure_mlflow(settings)
    with mlflow.start_run(run_name="score-bench"):
        sample = frame.head(3).assign(label=LABELS[0])
        info = _log_model(folder, MODEL, sample, LABELS)
    client.set_registered_model_alias(MODEL, "champion", info.registered_model_version)
    encoder_weights = sum(p.numel() for name, p in model.named_parameters()
                          if not name.startswith(("bert.embeddings", "classifier")))
    tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=128)["input_ids"])
    return {"posts": len(texts), "tokens": tokens, "encoder_weights": encoder_weights,
            "mean_tokens": round(tokens / len(texts), 1)}


def run_scoring(home: Path) -> dict:
    os.environ["PULSE_HOME"] = str(home)
    from tasks import jobs

    result = jobs.score_posts(DAY)
    return {"count": result["count"], "shards": result["shards"]}


def run_pipeline(home: Path) -> dict:
    import pandas as pd
    from transformers import pipeline

    texts = list(pd.read_parquet(home / "store" / "clean_posts" / f"date={DAY}" /
                                 "part-0.parquet")["text"])
    classify = pipeline("text-classification", model=str(home / "model"), device=-1,
                        batch_size=64, truncation=True, max_length=128, top_k=None)
    outputs = classify(texts)
    return {"count": len(outputs)}


VARIANTS = {"scoring": run_scoring, "pipeline": run_pipeline}


def child(variant: str, home: Path) -> None:
    """Run one variant in this process and print its measurements as one JSON line."""
    gflops = matmul_gflops()
    started = time.perf_counter()
    result = VARIANTS[variant](home)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"variant": variant, "seconds": round(seconds, 2),
                      "matmul_gflops": round(gflops, 1), "peak_mib": round(peak), **result}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child, arguments.home)
        return

    with tempfile.TemporaryDirectory(prefix="pulse-score-bench-") as folder:
        home = Path(folder)
        setup = prepare(home, arguments.posts)
        print(json.dumps(setup), flush=True)
        results = []
        for variant in VARIANTS:
            done = subprocess.run(
                [sys.executable, __file__, "--child", variant, "--home", str(home)],
                capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)

    flops_per_post = 2 * setup["encoder_weights"] * setup["tokens"] / setup["posts"]
    for result in results:
        result["posts_per_second"] = round(setup["posts"] / result["seconds"], 1)
        achieved = result["posts_per_second"] * flops_per_post / 1e9
        result["estimated_gflops"] = round(achieved, 1)
        result["share_of_matmul"] = round(achieved / result["matmul_gflops"], 3)
    scoring, baseline = results
    report = {
        "date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}", **setup,
        "results": results,
        "speedup": round(scoring["posts_per_second"] / baseline["posts_per_second"], 2),
        "memory_ratio": round(scoring["peak_mib"] / baseline["peak_mib"], 2),
    }
    print(json.dumps(report, indent=2))
    if arguments.output:
        arguments.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
