"""Benchmark: the batch-scoring task against transformers.pipeline, same model, same posts.

Each variant runs in its own subprocess so that its peak memory (max RSS) is its own:

- scoring: the ``score_posts`` steps as plain functions (plan, one shard per
  ``score.shard_size``, merge): the registered MLflow model loaded by version, length-sorted
  batches under ``torch.inference_mode``, the ``scores`` and ``predictions`` GX suites, one
  Parquet write.
- scoring_onnx_fp32 and scoring_onnx_int8: the same steps with ``score.runtime = "onnx"``,
  so the classifier runs on ONNX Runtime, as exported (fp32) or with int8 dynamic
  quantization. Each uses its own registered copy of the model, whose export and accuracy
  check run before the timing starts; their duration is reported as ``check_seconds``.
- pipeline: ``transformers.pipeline("text-classification")`` on the same model folder and
  texts, with the same batch size and max length, all class scores returned.

The model is the bundled all-MiniLM-L6-v2 with a fresh three-class head (throughput does
not depend on the head's weights). Each subprocess also measures fp32 matrix multiplication
(GFLOP/s) first, and the report gives the share of it that scoring reaches, counting
2 x (encoder weights outside the embeddings) FLOPs per token, an estimate that leaves out
attention scores and padding. The int8 variant uses the same fp32 FLOP count.

For each ONNX variant the report gives the macro-F1 of torch and of ONNX on the evaluation
set (``--evaluation-posts`` labeled sample posts of another day, logged with the model's
run as training logs it) and the share of the day's posts whose label equals the torch
scoring's. The head is untrained, so its class logits lie close together and rounding
flips labels more easily than in a trained model: read the int8 numbers as a pessimistic
case. The check's tolerance is set to 1.0 so that both ONNX variants are used whatever
their difference.

Usage: python bench/score_bench.py [--posts 20000] [--evaluation-posts 500]
       [--output docs/benchmarks-score.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY = dt.date(2026, 12, 4)
EVALUATION_DAY = dt.date(2026, 12, 3)
LABELS = ["negative", "neutral", "positive"]
MODEL = "social-pulse-sentiment"
TORCH_VARIANT = "scoring"
ONNX_VARIANTS = {"scoring_onnx_fp32": False, "scoring_onnx_int8": True}  # onnx_quantize
ONNX_TOLERANCE = 1.0  # accept every ONNX model, so that both are measured


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


def prepare(home: Path, posts: int, evaluation_posts: int) -> dict:
    """Write the day's clean posts, save the model folder and register it once per variant.

    The run that logs the model also logs a labeled evaluation set. Version 1 is the torch
    variant's. Each ONNX variant gets a copy of it, exported and checked here.
    """
    os.environ["PULSE_HOME"] = str(home)
    import mlflow
    import pandas as pd
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tasks import storage
    from tasks.collect.sample import generate_posts
    from tasks.collect.stage import CLEAN
    from tasks.registry.tracking import configure_mlflow
    from tasks.settings import reload_settings
    from tasks.train.pipeline import EVALUATION_ARTIFACT, _log_model

    settings = reload_settings()
    texts = [post.text for post in generate_posts(DAY, count=posts)]
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(len(texts))], "text": texts})
    storage.write_frame(storage.open_store(settings.store), CLEAN, DAY, frame)

    folder = home / "model"
    torch.manual_seed(0)  # the fresh head's weights, so that the macro-F1 values repeat
    tokenizer = AutoTokenizer.from_pretrained(settings.base_model_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        settings.base_model_path, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    evaluation = pd.DataFrame([{"text": post.text, "label": post.label} for post
                               in generate_posts(EVALUATION_DAY, count=evaluation_posts)])
    evaluation_file = home / "validation.parquet"
    evaluation.to_parquet(evaluation_file, index=False)

    client = configure_mlflow(settings)
    with mlflow.start_run(run_name="score-bench") as run:
        mlflow.log_param("labels", ",".join(LABELS))
        mlflow.log_artifact(str(evaluation_file), EVALUATION_ARTIFACT.rsplit("/", 1)[0])
        sample = frame.head(3).assign(label=LABELS[0])
        info = _log_model(folder, MODEL, sample, LABELS)
    versions = {TORCH_VARIANT: str(info.registered_model_version)}
    source = client.get_model_version(MODEL, versions[TORCH_VARIANT]).source
    for variant in ONNX_VARIANTS:
        copy = client.create_model_version(MODEL, source, run_id=run.info.run_id)
        versions[variant] = str(copy.version)
    checks = check_onnx_variants(settings, versions)
    encoder_weights = sum(p.numel() for name, p in model.named_parameters()
                          if not name.startswith(("bert.embeddings", "classifier")))
    tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=128)["input_ids"])
    return {"posts": len(texts), "tokens": tokens, "encoder_weights": encoder_weights,
            "mean_tokens": round(tokens / len(texts), 1), "evaluation_posts": len(evaluation),
            "versions": versions, "onnx_checks": checks}


def check_onnx_variants(settings, versions: dict[str, str]) -> dict[str, dict]:
    """Export and check the version of each ONNX variant; return the decisions and timings."""
    from tasks.score import onnx_runtime

    checks = {}
    for variant, quantize in ONNX_VARIANTS.items():
        variant_settings = settings.model_copy(update={"score": settings.score.model_copy(
            update=onnx_settings(quantize))})
        started = time.perf_counter()
        check = onnx_runtime.check_version(variant_settings, MODEL, versions[variant])
        checks[variant] = {
            "runtime": check.runtime, "check_seconds": round(time.perf_counter() - started, 1),
            "torch_macro_f1": round(check.torch_macro_f1, 4),
            "onnx_macro_f1": round(check.onnx_macro_f1, 4),
            "macro_f1_delta": round(check.delta, 4),
        }
    return checks


def onnx_settings(quantize: bool) -> dict:
    """Return the ``score`` fields of an ONNX variant."""
    return {"runtime": "onnx", "onnx_quantize": quantize, "onnx_tolerance": ONNX_TOLERANCE}


def run_scoring(home: Path) -> dict:
    os.environ["PULSE_HOME"] = str(home)
    from tasks import jobs

    result = jobs.score_posts(DAY)
    return {"count": result["count"], "shards": result["shards"],
            "runtime": result["runtimes"]["sentiment"]}


def run_onnx_scoring(home: Path, quantize: bool) -> dict:
    for field, value in onnx_settings(quantize).items():
        os.environ[f"PULSE_SCORE__{field.upper()}"] = str(value).lower()
    return run_scoring(home)


def run_pipeline(home: Path) -> dict:
    import pandas as pd
    from transformers import pipeline

    texts = list(pd.read_parquet(home / "store" / "clean_posts" / f"date={DAY}" /
                                 "part-0.parquet")["text"])
    classify = pipeline("text-classification", model=str(home / "model"), device=-1,
                        batch_size=64, truncation=True, max_length=128, top_k=None)
    outputs = classify(texts)
    return {"count": len(outputs)}


VARIANTS = {
    TORCH_VARIANT: run_scoring,
    **{variant: lambda home, quantize=quantize: run_onnx_scoring(home, quantize)
       for variant, quantize in ONNX_VARIANTS.items()},
    "pipeline": run_pipeline,
}


def child(variant: str, home: Path) -> None:
    """Run one variant in this process and print its measurements as one JSON line.

    A scoring variant's scores partition is then copied to ``home/scores-<variant>.parquet``
    for the label comparison.
    """
    gflops = matmul_gflops()
    started = time.perf_counter()
    result = VARIANTS[variant](home)
    seconds = time.perf_counter() - started
    peak = peak_memory_mib()
    if variant != "pipeline":
        shutil.copyfile(home / "store" / "scores" / f"date={DAY}" / "part-0.parquet",
                        home / f"scores-{variant}.parquet")
    print(json.dumps({"variant": variant, "seconds": round(seconds, 2),
                      "matmul_gflops": round(gflops, 1), "peak_mib": round(peak), **result}))


def peak_memory_mib() -> float:
    """Return the peak resident set size of this process, in MiB.

    On Linux this is VmHWM from /proc/self/status, the peak of this program alone. Linux
    carries ru_maxrss over from the parent across fork and exec, so a child started by a
    parent that has loaded the prepared models would report at least the parent's peak.
    Elsewhere it is ru_maxrss, assumed to be in KiB.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # the line reads "VmHWM:  123456 kB"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def use_champion(version: str) -> None:
    """Point the champion alias at ``version``, in the registry that prepare() configured."""
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(MODEL, "champion", version)


def label_agreement(home: Path, variant: str) -> float:
    """Return the share of the day's posts whose label under ``variant`` is torch's."""
    import pandas as pd

    torch_labels = pd.read_parquet(home / f"scores-{TORCH_VARIANT}.parquet")["label"]
    labels = pd.read_parquet(home / f"scores-{variant}.parquet")["label"]
    return float((labels == torch_labels).mean())


def ratios(result: dict, baseline: dict) -> dict:
    """Return the throughput and peak-memory ratios of ``result`` to ``baseline``."""
    return {"speedup": round(result["posts_per_second"] / baseline["posts_per_second"], 2),
            "memory_ratio": round(result["peak_mib"] / baseline["peak_mib"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--evaluation-posts", type=int, default=500,
                        help="labeled posts in the evaluation set of the ONNX accuracy check")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child, arguments.home)
        return

    with tempfile.TemporaryDirectory(prefix="pulse-score-bench-") as folder:
        home = Path(folder)
        setup = prepare(home, arguments.posts, arguments.evaluation_posts)
        print(json.dumps(setup), flush=True)
        results = {}
        for variant in VARIANTS:
            if variant in setup["versions"]:
                use_champion(setup["versions"][variant])
            done = subprocess.run(
                [sys.executable, __file__, "--child", variant, "--home", str(home)],
                capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
            results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(results[variant]), flush=True)
        agreements = {variant: label_agreement(home, variant) for variant in ONNX_VARIANTS}

    flops_per_post = 2 * setup["encoder_weights"] * setup["tokens"] / setup["posts"]
    for result in results.values():
        result["posts_per_second"] = round(setup["posts"] / result["seconds"], 1)
        achieved = result["posts_per_second"] * flops_per_post / 1e9
        result["estimated_gflops"] = round(achieved, 1)
        result["share_of_matmul"] = round(achieved / result["matmul_gflops"], 3)
    scoring, baseline = results[TORCH_VARIANT], results["pipeline"]
    onnx = {}
    for variant in ONNX_VARIANTS:
        vs_pipeline, vs_scoring = ratios(results[variant], baseline), ratios(results[variant],
                                                                            scoring)
        onnx[variant] = {
            **setup["onnx_checks"][variant],
            "label_agreement_with_torch": round(agreements[variant], 4),
            "speedup_vs_pipeline": vs_pipeline["speedup"],
            "memory_ratio_vs_pipeline": vs_pipeline["memory_ratio"],
            "speedup_vs_scoring": vs_scoring["speedup"],
            "memory_ratio_vs_scoring": vs_scoring["memory_ratio"],
        }
    del setup["onnx_checks"]
    report = {
        "date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}", **setup,
        "results": list(results.values()),
        **ratios(scoring, baseline),
        "onnx": onnx,
    }
    print(json.dumps(report, indent=2))
    if arguments.output:
        arguments.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
