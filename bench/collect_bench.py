"""Benchmark: collect, validate and clean N posts, against a naive pandas pipeline.

Each variant runs in its own subprocess so that its peak memory (max RSS) is its own:

- pipeline: Social Pulse's collection stage (raw partition, raw_posts GX suite with
  quarantine, normalisation and masking, MinHash near-duplicate search, clean_posts suite,
  manifest), reading a JSONL file of N posts from a folder source.
- naive: json.loads per line (bad lines skipped), DataFrame.apply of the same text
  normalisation per row, drop_duplicates on the text, one Parquet write. No validation,
  no quarantine, no near duplicates.

Usage: python bench/collect_bench.py [--posts 1000000] [--output docs/benchmarks-collect.json]
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


def write_posts(folder: Path, count: int) -> Path:
    """Write ``count`` sample posts (with the sample's duplicates and bad lines) as JSONL."""
    from tasks.collect.sample import generate_raw_lines

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "posts.jsonl"
    with path.open("wb") as handle:
        chunk = 50_000
        for start in range(0, count, chunk):
            day = DAY + dt.timedelta(days=start // chunk)
            handle.write(b"\n".join(generate_raw_lines(day, count=min(chunk, count - start))) + b"\n")
    return path


def run_pipeline(source: Path, home: Path) -> dict:
    os.environ["PULSE_HOME"] = str(home)
    from tasks import jobs

    manifest = jobs.collect_day(DAY, str(source))
    return {key: manifest[key] for key in ("collected", "clean", "duplicates", "quarantined")}


def run_naive(source: Path, home: Path) -> dict:
    import pandas as pd

    from tasks.clean.text import normalize_text

    rows = []
    with (source / "posts.jsonl").open("rb") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("text"):
                rows.append(record)
    frame = pd.DataFrame(rows)
    frame["text"] = frame["text"].apply(normalize_text)
    clean = frame.drop_duplicates(subset="text")
    home.mkdir(parents=True, exist_ok=True)
    clean.to_parquet(home / "clean.parquet", index=False)
    return {"collected": len(rows), "clean": len(clean)}


def child(variant: str, source: Path, home: Path) -> None:
    started = time.perf_counter()
    counts = {"pipeline": run_pipeline, "naive": run_naive}[variant](source, home)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"variant": variant, "seconds": seconds, "peak_mib": peak_mib, **counts}))


def measure(variant: str, source: Path, home: Path) -> dict:
    command = [sys.executable, __file__, "--child", variant, "--source", str(source),
               "--home", str(home)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000, help="posts to generate")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--child", choices=["pipeline", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child, arguments.source, arguments.home)
        return

    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as folder:
        source = Path(folder) / "source"
        write_posts(source, arguments.posts)
        results = [measure(variant, source, Path(folder) / variant) for variant in ("pipeline", "naive")]
    for result in results:
        result["posts_per_second"] = result["collected"] / result["seconds"]
    report = {
        "posts": arguments.posts,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "results": results,
        "pipeline_to_naive_time_ratio": results[0]["seconds"] / results[1]["seconds"],
    }
    print(json.dumps(report, indent=2))
    if arguments.output:
        arguments.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
