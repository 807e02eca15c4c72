"""Batches of training pairs in which no two pairs share a group.

MultipleNegativesRankingLoss scores each anchor against every positive in its batch and
treats all but its own as negatives. A second pair from the anchor's event would be a
false negative that pushes two posts of the same event apart. So a batch contains at most
one pair per group, and no batch is larger than the number of training groups.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from sentence_transformers.base.sampler import DefaultBatchSampler

log = logging.getLogger(__name__)


class DistinctGroupBatchSampler(DefaultBatchSampler):
    """Yield batches of dataset positions whose groups are all different.

    Each batch takes one pair from each of the ``batch_size`` groups with the most pairs
    left, ties broken at random. Groups therefore run out together, and every batch is full
    while at least ``batch_size`` groups have pairs left. Pairs left over when fewer than two
    groups have any are skipped for that epoch. ``groups`` gives the group of each dataset
    row and is bound with functools.partial, because the trainer passes only the arguments
    of DefaultBatchSampler.
    """

    def __init__(self, dataset: Any, batch_size: int, drop_last: bool,
                 valid_label_columns: list[str] | None = None, generator: Any = None,
                 seed: int = 0, *, groups: Sequence[str]) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        if len(groups) != len(dataset):
            raise ValueError(f"{len(groups)} group names given for {len(dataset)} training pairs")
        self.members: dict[str, list[int]] = defaultdict(list)
        for position, group in enumerate(groups):
            self.members[group].append(position)
        self.batches = count_batches(list(Counter(groups).values()), batch_size, drop_last)
        if len(self.members) < batch_size:
            log.info("batches contain at most %d pairs, one per training group (batch size %d)",
                     len(self.members), batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        shuffler = random.Random(self.seed + self.epoch)
        queues = {}
        for group, positions in self.members.items():
            queues[group] = shuffler.sample(positions, len(positions))
        # Heap entries are (-pairs left, random tie-break, group).
        heap = [(-len(queue), shuffler.random(), group) for group, queue in queues.items()]
        heapq.heapify(heap)
        while len(heap) >= 2:
            chosen = [heapq.heappop(heap) for _ in range(min(self.batch_size, len(heap)))]
            batch = [queues[group].pop() for _, _, group in chosen]
            for _, _, group in chosen:
                if queues[group]:
                    heapq.heappush(heap, (-len(queues[group]), shuffler.random(), group))
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch

    def __len__(self) -> int:
        return self.batches


def count_batches(group_sizes: Sequence[int], batch_size: int, drop_last: bool = False) -> int:
    """Return how many batches DistinctGroupBatchSampler yields per epoch for these groups.

    The count does not depend on the seed: whichever of several equally large groups is
    picked, the sizes left afterwards are the same.
    """
    if batch_size < 2:
        raise ValueError(
            f"invalid batch size {batch_size}: in-batch negatives need at least 2 pairs per batch"
        )
    heap = [-size for size in group_sizes if size > 0]
    heapq.heapify(heap)
    batches = 0
    while len(heap) >= 2:
        chosen = [heapq.heappop(heap) for _ in range(min(batch_size, len(heap)))]
        if len(chosen) == batch_size or not drop_last:
            batches += 1
        for negative_size in chosen:
            if negative_size < -1:
                heapq.heappush(heap, negative_size + 1)
    return batches
