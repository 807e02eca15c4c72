"""Exact and near-duplicate detection with MinHash LSH (datasketch), within and across days.

Two posts are near duplicates when the Jaccard similarity of their character 4-gram sets
(after ``dedup_key``) is at least the threshold. Candidates come from LSH band keys and are
confirmed by the exact Jaccard similarity, so band collisions do not remove distinct posts.
Each clean post stores its MinHash signature, so later days can match against it without
recomputing it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import xxhash
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


def _hash_shingle(shingle: bytes) -> int:
    return xxhash.xxh32_intdigest(shingle)


@dataclass
class DuplicateIndex:
    """Posts seen so far, searchable by exact dedup key and by LSH band keys.

    A band bucket keeps at most ``bucket_limit`` posts. Posts in one bucket are all
    originals that were not near duplicates of each other, so a full bucket means very
    similar but distinct posts, and checking more of them rarely finds another match.
    """

    threshold: float = 0.8
    bucket_limit: int = 16
    _exact: dict[str, str] = field(default_factory=dict)
    _bands: dict[tuple[int, int], list[int]] = field(default_factory=lambda: defaultdict(list))
    _ids: list[str] = field(default_factory=list)
    _texts: list[str] = field(default_factory=list)
    _signatures: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Band for a lower similarity than the threshold, so that candidates are found for
        # nearly every true near duplicate; find() then confirms them by exact Jaccard.
        lsh = MinHashLSH(threshold=CANDIDATE_THRESHOLD, num_perm=NUM_PERM)
        self.band_count, self.rows_per_band = lsh.b, lsh.r
        self._template = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=_hash_shingle)

    def sketch(self, text: str) -> np.ndarray:
        """Return the MinHash signature of the text (NUM_PERM unsigned 32-bit values)."""
        signature = MinHash(num_perm=NUM_PERM, permutations=self._template.permutations,
                            scheme=self._template.scheme, hashfunc=_hash_shingle)
        signature.update_batch(list(shingles(text)))
        return signature.hashvalues.astype(np.uint32)

    def band_keys(self, signature: np.ndarray) -> list[int]:
        """Return one 63-bit key per LSH band of ``signature``."""
        width = self.rows_per_band
        return [
            int.from_bytes(hashlib.blake2b(signature[band * width : (band + 1) * width].tobytes(),
                                           digest_size=8).digest(), "big") >> 1
            for band in range(self.band_count)
        ]

    def add(self, post_id: str, text: str, signature: np.ndarray) -> None:
        self._exact.setdefault(dedup_key(text), post_id)
        position = len(self._ids)
        self._ids.append(post_id)
        self._texts.append(text)
        self._signatures.append(np.asarray(signature, dtype=np.uint32))
        for band, key in enumerate(self.band_keys(signature)):
            bucket = self._bands[(band, key)]
            if len(bucket) < self.bucket_limit:
                bucket.append(position)

    def find_exact(self, text: str) -> tuple[str, str] | None:
        """Return (id of an earlier post with the same dedup key, reason), else None."""
        earlier = self._exact.get(dedup_key(text))
        return None if earlier is None else (earlier, "same text as an earlier post")

    def find(self, text: str, signature: np.ndarray) -> tuple[str, str] | None:
        """Return (id of the earlier post, reason) when ``text`` duplicates one, else None.

        Candidates share an LSH band. The one with the most equal signature values is then
        checked by the exact Jaccard similarity of the two texts' shingles.
        """
        exact = self.find_exact(text)
        if exact is not None:
            return exact
        keys = self.band_keys(signature)
        candidates = sorted({p for band, key in enumerate(keys) for p in self._bands.get((band, key), ())})
        if not candidates:
            return None
        agreement = (np.stack([self._signatures[p] for p in candidates]) == signature).mean(axis=1)
        best = candidates[int(np.argmax(agreement))]
        similarity = jaccard(shingles(text), shingles(self._texts[best]))
        if similarity >= self.threshold:
            reason = f"near duplicate of an earlier post (Jaccard {similarity:.2f})"
            return self._ids[best], reason
        return None
