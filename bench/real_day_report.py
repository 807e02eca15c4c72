"""Build daily reports from real posts: champions trained on real labels, five real days.

    .venv/bin/python bench/real_day_report.py --output-dir docs/report-real

The days are made of CrisisLexT26 tweets (English crisis events) with a few Weibo posts
(Chinese). No public set with real post dates fits here, so each day takes tweets of the
events listed in DAYS, in file order, and gets ids and times of its own. The last
day switches to other events and carries more Chinese posts, so the drift checks have
something real to find. The champions are trained with `pulse train` on sentiment-en
(sentiment) and WNUT-17 (entities) and promoted by the real gate, so the report's
sentiment, entities and representative posts are model output, not gold labels.

Everything runs in a temporary home (or --home) through the `pulse` CLI, as a user would
run it: collect each day from a file, promote, index, score and report. The last day's
report folder is copied to --output-dir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"
FIRST_DAY = dt.date(2026, 11, 26)
# Per day: (CrisisLexT26 events, tweets per event, Weibo posts).
DAYS = [
    (["2013_Alberta_floods", "2013_Queensland_floods"], 250, 10),
    (["2013_Alberta_floods", "2013_Manila_floods"], 250, 10),
    (["2013_Queensland_floods", "2013_Manila_floods"], 250, 10),
    (["2013_Alberta_floods", "2013_Queensland_floods"], 250, 10),
    (["2013_West_Texas_explosion", "2013_LA_airport_shootings"], 250, 120),
]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with crisislex-t26, weibo-emotion-zh, sentiment-en, wnut17")
    parser.add_argument("--output-dir", type=Path, default=PROJECT_ROOT / "docs" / "report-real",
                        help="folder that receives the last day's report")
    parser.add_argument("--home", type=Path, default=None,
                        help="Social Pulse home for this run (default: a temporary folder)")
    parser.add_argument("--entity-epochs", type=int, default=2,
                        help="training epochs of the entity model (sentiment uses the settings)")
    return parser.parse_args()


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_day_files(data: Path, inbox: Path) -> list[tuple[dt.date, Path]]:
    """Write one JSONL file of posts per day and return (day, file) pairs."""
    tweets = read_jsonl(data / "crisislex-t26" / "tweets.jsonl")
    weibo = read_jsonl(data / "weibo-emotion-zh" / "validation.jsonl")
    by_event: dict[str, list[dict]] = {}
    for tweet in tweets:
        by_event.setdefault(tweet["event"], []).append(tweet)

    used: dict[str, int] = {}
    weibo_used = 0
    files = []
    for offset, (events, per_event, chinese) in enumerate(DAYS):
        day = FIRST_DAY + dt.timedelta(days=offset)
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
        posts = []
        for event in events:
            first = used.get(event, 0)
            chosen = by_event[event][first:first + per_event]
            if len(chosen) < per_event:
                raise SystemExit(f"error: event {event} has too few tweets left for {day}")
            used[event] = first + per_event
            posts += [{"id": f"{event}-{first + n}", "text": row["text"], "lang": "en"}
                      for n, row in enumerate(chosen)]
        posts += [{"id": f"weibo-{weibo_used + n}", "text": row["text"], "lang": "zh"}
                  for n, row in enumerate(weibo[weibo_used:weibo_used + chinese])]
        weibo_used += chinese
        seconds_apart = 86_400 / len(posts)
        for n, post in enumerate(posts):
            post["created_at"] = (start + dt.timedelta(seconds=n * seconds_apart)).isoformat()
        path = inbox / f"posts-{day.isoformat()}.jsonl"
        path.write_text("".join(json.dumps(post, ensure_ascii=False) + "\n" for post in posts),
                        encoding="utf-8")
        files.append((day, path))
    return files


def pulse(*arguments: str, environment: dict[str, str]) -> None:
    """Run one `pulse` command and stop the script when it fails."""
    command = [str(Path(sys.executable).parent / "pulse"), *arguments]
    started = time.perf_counter()
    print("$ pulse " + " ".join(arguments), flush=True)
    subprocess.run(command, env=environment, check=True)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def main() -> None:
    arguments = parse_arguments()
    home = arguments.home or Path(tempfile.mkdtemp(prefix="pulse-real-report-"))
    inbox = home / "inbox-real"
    inbox.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PULSE_HOME": str(home), "HF_HUB_OFFLINE": "1",
                   "PULSE_CONFIG": str(home / "absent.toml")}
    print(f"home: {home}", flush=True)

    days = write_day_files(arguments.data, inbox)
    for day, path in days:
        pulse("collect", "--source", str(path), "--date", day.isoformat(),
              environment=environment)

    sentiment = arguments.data / "sentiment-en"
    pulse("train", "sentiment", "--train", str(sentiment / "train.jsonl"),
          "--validation", str(sentiment / "validation.jsonl"), environment=environment)
    wnut = arguments.data / "wnut17"
    pulse("train", "entities", "--train", str(wnut / "train.conll"),
          "--validation", str(wnut / "validation.conll"),
          environment={**environment, "PULSE_TRAIN__EPOCHS": str(arguments.entity_epochs)})
    for task in ("sentiment", "entities"):
        pulse("promote", task, environment=environment)

    for day, _ in days:
        pulse("index", "--date", day.isoformat(), environment=environment)
        subprocess.run(
            [sys.executable, "-c",
             "import sys; from tasks import jobs; print(jobs.score_posts(sys.argv[1]))",
             day.isoformat()],
            env=environment, check=True, cwd=PROJECT_ROOT,
        )
    last_day = days[-1][0]
    pulse("report", "--date", last_day.isoformat(), environment=environment)

    report = home / "store" / "reports" / f"date={last_day.isoformat()}"
    if not report.is_dir():
        raise SystemExit(f"error: no report folder at {report}; check PULSE_HOME's store path")
    if arguments.output_dir.exists():
        shutil.rmtree(arguments.output_dir)
    shutil.copytree(report, arguments.output_dir)
    print(f"report of {last_day} copied to {arguments.output_dir}")


if __name__ == "__main__":
    main()
