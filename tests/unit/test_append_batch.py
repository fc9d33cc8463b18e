"""Unit tests for ``wirehub.storage.batch``: a key repeated within one append is one publication."""

from __future__ import annotations

from wirehub.storage.batch import AppendBatch
from wirehub.types import NewPublication, Publication


def test_batch_appends_each_key_once_and_repeats_get_the_first_result() -> None:
    """Only the first publication with a key is to be appended; later ones answer with its result."""
    pubs = [
        NewPublication("a", idempotency_key="k"),
        NewPublication("b"),
        NewPublication("c", idempotency_key="k"),
        NewPublication("d", idempotency_key="j"),
    ]
    batch = AppendBatch(pubs)
    assert batch.todo == [0, 1, 3]
    assert batch.first_with_key == {"k": 0, "j": 3}

    for offset, i in enumerate(batch.todo, start=1):
        batch.results[i] = Publication(pubs[i].data, offset=offset)
    appended = batch.appended("epoch")

    assert appended.epoch == "epoch"
    assert [(p.data, p.offset) for p in appended.publications] == [("a", 1), ("b", 2), ("a", 1), ("d", 3)]


def test_batch_without_keys_appends_everything_in_order() -> None:
    """Publications without an idempotency key are never merged, even with equal data."""
    batch = AppendBatch([NewPublication("x"), NewPublication("x")])
    assert batch.todo == [0, 1]
