"""Read and write CoNLL token files and check their IOB2 tags.

A CoNLL file has one token per line with its columns separated by a tab (a single space
is accepted too), and a blank line between posts. The first column is the token and the
last column is its tag. ``-DOCSTART-`` lines separate documents and are skipped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DOCSTART = "-DOCSTART-"
OUTSIDE = "O"
TAG_PATTERN = re.compile(r"O|[BI]-\S+")
MAX_LOGGED_REPAIRS = 10


@dataclass
class ConllRow:
    """One token line of a CoNLL file: its 1-based line number, fields and separator."""

    line: int
    fields: list[str]
    separator: str


@dataclass
class TaggedPost:
    """The tokens of one post with one IOB2 tag each.

    ``line`` is where the post starts in its source (a file line, or a task number for
    Label Studio exports). ``repaired`` counts the tags that were changed from I- to B-.
    """

    tokens: list[str]
    tags: list[str]
    line: int = 0
    repaired: int = 0


def parse_conll_line(text: str) -> tuple[list[str], str]:
    """Split one line into fields, by tabs when it has any and by spaces otherwise.

    Return the fields (empty for a blank line) and the separator that was used.
    """
    text = text.rstrip("\r\n")
    separator = "\t" if "\t" in text else " "
    fields = [field.strip() for field in text.split(separator)] if text.strip() else []
    while fields and not fields[-1]:
        fields.pop()
    return [field for field in fields if field], separator


def iter_conll_posts(lines: Iterable[str]) -> Iterator[list[ConllRow]]:
    """Yield the token rows of each post. Blank and ``-DOCSTART-`` lines end a post."""
    rows: list[ConllRow] = []
    for number, text in enumerate(lines, start=1):
        fields, separator = parse_conll_line(text)
        if fields and fields[0] != DOCSTART:
            rows.append(ConllRow(number, fields, separator))
            continue
        if rows:
            yield rows
        rows = []
    if rows:
        yield rows


def read_conll_lines(path: Path) -> list[str]:
    """Return the lines of a UTF-8 text file, without line ends and a byte order mark.

    Lines end only at LF (or CRLF), unlike ``str.splitlines``, which also splits at
    characters such as U+2028 that a token may contain.
    """
    if not path.is_file():
        raise FileNotFoundError(f"CoNLL file {path} not found")
    lines = path.read_bytes().decode("utf-8-sig").split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_conll(path: Path) -> list[TaggedPost]:
    """Read posts of token and tag from ``path`` and repair their IOB2 tags.

    Raises ValueError naming the line when a line has no tag column or its tag is not
    ``O``, ``B-<type>`` or ``I-<type>``.
    """
    posts = []
    for rows in iter_conll_posts(read_conll_lines(path)):
        for row in rows:
            if len(row.fields) < 2:
                raise ValueError(
                    f"{path} line {row.line}: expected a token and a tag, got {row.fields!r}"
                )
        tokens = [row.fields[0] for row in rows]
        tags = [row.fields[-1] for row in rows]
        posts.append(TaggedPost(tokens, tags, rows[0].line))
    repaired = validate_posts(posts, str(path))
    log.info("read %d posts, %d tokens from %s (%d tags repaired)", len(posts),
             sum(len(post.tokens) for post in posts), path, repaired)
    return posts


def write_conll(path: Path, posts: Sequence[TaggedPost]) -> None:
    """Write ``posts`` as token TAB tag lines, with a blank line after each post."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for post in posts:
            for token, tag in zip(post.tokens, post.tags, strict=True):
                handle.write(f"{token}\t{tag}\n")
            handle.write("\n")


def append_conll_column(lines: Sequence[str], values: dict[int, str]) -> list[str]:
    """Return ``lines`` with ``values[line number]`` appended as a last column.

    The new field is joined with the separator that the line already uses. Lines with no
    entry in ``values`` (blank lines, ``-DOCSTART-``) are returned unchanged.
    """
    output = []
    for number, text in enumerate(lines, start=1):
        text = text.rstrip("\r\n")
        if number in values:
            separator = "\t" if "\t" in text else " "
            text = f"{text.rstrip()}{separator}{values[number]}"
        output.append(text)
    return output


def check_tag(tag: str) -> bool:
    """Return whether ``tag`` is ``O``, ``B-<type>`` or ``I-<type>``."""
    return TAG_PATTERN.fullmatch(tag) is not None


def repair_iob2(tags: Sequence[str]) -> tuple[list[str], list[int]]:
    """Change each I- tag that does not continue an entity of its type into a B- tag.

    An I-X tag continues an entity only right after B-X or I-X. Return the repaired tags
    and the positions that were changed. Raises ValueError on a tag that is not IOB2.
    """
    repaired: list[str] = []
    changed: list[int] = []
    previous = OUTSIDE
    for position, tag in enumerate(tags):
        if not check_tag(tag):
            raise ValueError(f"invalid IOB2 tag {tag!r}: expected O, B-<type> or I-<type>")
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
            changed.append(position)
        repaired.append(tag)
        previous = tag
    return repaired, changed


def validate_posts(posts: Sequence[TaggedPost], source: str) -> int:
    """Repair the IOB2 tags of ``posts`` in place, log the repairs and return their count.

    Repairs are logged with the line of the token, taking ``post.line`` as the line of the
    post's first token and one token per line, as in a CoNLL file.
    """
    total = 0
    for post in posts:
        try:
            post.tags, changed = repair_iob2(post.tags)
        except ValueError as error:
            raise ValueError(f"{source}, post at line {post.line}: {error}") from error
        post.repaired = len(changed)
        for position in changed:
            total += 1
            if total <= MAX_LOGGED_REPAIRS:
                log.warning("%s line %d: %r follows no entity of its type, repaired to %r",
                            source, post.line + position, post.tokens[position],
                            post.tags[position])
    if total > MAX_LOGGED_REPAIRS:
        log.warning("%s: %d I- tags repaired to B- in all (the first %d are logged above)",
                    source, total, MAX_LOGGED_REPAIRS)
    return total


def entity_types(posts: Iterable[TaggedPost]) -> list[str]:
    """Return the sorted entity types that the tags of ``posts`` use."""
    return sorted({tag[2:] for post in posts for tag in post.tags if tag != OUTSIDE})


def tag_set(types: Iterable[str]) -> list[str]:
    """Return the model's label list: O, then B- and I- for each type."""
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in sorted(set(types)) for prefix in "BI"]
