"""The projector folds a batch once: the second sink takes the first one's fold only
for the very same batch from the very same position."""

from __future__ import annotations

from projections.fold import Changes, Folded, FoldShare


def test_the_next_sink_takes_the_fold_of_the_same_batch_once() -> None:
    share, records, changes = FoldShare(), [object(), object()], Changes()
    share.offer("runs", 0, Folded(records, 17, changes))
    assert share.take("runs", 0, records, 17) is changes
    assert share.take("runs", 0, records, 17) is None  # taken: a retry folds on its own


def test_a_sink_at_another_position_folds_on_its_own() -> None:
    share, records = FoldShare(), [object()]
    share.offer("runs", 0, Folded(records, 17, Changes()))
    assert share.take("runs", 0, records, 12) is None  # it is behind: other records fresh


def test_another_batch_or_partition_gets_nothing() -> None:
    share, records = FoldShare(), [object()]
    share.offer("runs", 0, Folded(records, 17, Changes()))
    assert share.take("runs", 1, records, 17) is None
    share.offer("runs", 0, Folded(records, 17, Changes()))
    # the pipeline narrowed a failing batch to one record: a new list, not this fold
    assert share.take("runs", 0, list(records), 17) is None
