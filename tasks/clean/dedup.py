"""Exact and near-duplicate detection with MinHash LSH (datasketch), within and across days.

Two posts are near duplicates when the Jaccard similarity of their character 4-gram sets
(after ``dedup_key``) is at least the threshold. Candidates come from LSH band keys and are
confirmed by the exact Jaccard similarity, so band collisions do not remove distinct posts.
Each clean post stores its band keys, so later days can match against it without
recomputing signatures.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from datasketch import MinHash, MinHashLSH

from tasks.clean.text import dedup_key

log = logging.getLogger(__name__)

SHINGLE_SIZE = 4
NUM_PERM = 64
CANDIDATE_THRESHOLD = 0.5


def shingles(text: str) -> set[bytes]:
    """Character 4-grams of the post's dedup key (the whole key when shorter)."""
    key = dedup_key(text)
    if len(key) <= SHINGLE_SIZE:
        return {key.encode()}
    return {key[i : i + SHINGLE_SIZE].encode() for i in range(len(key) - SHINGLE_SIZE + 1)}


def jaccard(left: set[bytes], right: set[bytes]) -> float:
    return len(left & right) / len(left | right) if left or right else 1.0


@dataclass
class DuplicateIndex:
    """Posts seen so far, searchable by exact dedup key and by LSH band keys."""

    threshold: float = 0.8
    _exact: dict[str, str] = field(default_factory=dict)
    _bands: dict[tuple[int, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    _texts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Band for a lower similarity than the threshold, so that candidates are found for
        # nearly every true near duplicate; find() then confirms them by exact Jaccard.
        lsh = MinHashLSH(threshold=CANDIDATE_THRESHOLD, num_perm=NUM_PERM)
        self.band_count, self.rows_per_band = lsh.b, lsh.r
        self._template = MinHash(num_perm=NUM_PERM, seed=1)

    def band_keys(self, text: str) -> list[int]:
        """Return one 63-bit key per LSH band of the text's MinHash signature."""
        signature = MinHash(num_perm=NUM_PERM, permutations=self._template.permutations,
                            scheme=self._template.scheme)
        signature.update_batch(list(shingles(text)))
        values = signature.hashvalues.astype(np.uint64)
        keys = []
        for band in range(self.band_count):
            chunk = values[band * self.rows_per_band : (band + 1) * self.rows_per_band]
            digest = hashlib.blake2b(chunk.tobytes(), digest_size=8).digest()
            keys.append(int.from_bytes(digest, "big") >> 1)
        return keys

    def add(self, post_id: str, text: str, keys: Iterable[int]) -> None:
        self._exact.setdefault(dedup_key(text), post_id)
        self._texts[post_id] = text
        for band, key in enumerate(keys):
            self._bands[(band, key)].append(post_id)

    def find(self, text: str, keys: Iterable[int]) -> tuple[str, str] | None:
        """Return (id of the earlier post, reason) when ``text`` duplicates one, else None."""
        exact = self._exact.get(dedup_key(text))
        if exact is not None:
            return exact, "same text as an earlier post"
        candidates = {pid for band, key in enumerate(keys) for pid in self._bands.get((band, key), ())}
        if not candidates:
            return None
        mine = shingles(text)
        best = max(candidates, key=lambda pid: jaccard(mine, shingles(self._texts[pid])))
        similarity = jaccard(mine, shingles(self._texts[best]))
        if similarity >= self.threshold:
            return best, f"near duplicate of an earlier post (Jaccard {similarity:.2f})"
        return None
