"""One append's publications as both stores take them: a key repeated in the batch is one publication.

``MessageStore.append`` promises that a publication whose idempotency key was appended before
(within the window) is not stored again. Within one batch the same holds: the first publication
with a key is appended (or found in the store), and every later one with that key gets its result.
"""

from __future__ import annotations

from collections.abc import Sequence

from wirehub.types import Appended, NewPublication, Publication

__all__ = ["AppendBatch"]


class AppendBatch:
    """The publications of one append and what each turned out to be, by index."""

    __slots__ = ("first_with_key", "pubs", "results", "todo")

    def __init__(self, pubs: Sequence[NewPublication]) -> None:
        self.pubs = pubs
        self.results: list[Publication | None] = [None] * len(pubs)
        """What each publication is: appended, or the original of its key; None while not known."""
        self.first_with_key: dict[str, int] = {}
        """The index of the first publication with each idempotency key."""
        self.todo: list[int] = []
        """The indexes to append or look up, in order: every publication without a key, and the
        first with each key."""
        for i, pub in enumerate(pubs):
            key = pub.idempotency_key
            if key:
                if key in self.first_with_key:
                    continue
                self.first_with_key[key] = i
            self.todo.append(i)

    def appended(self, epoch: str) -> Appended:
        """The outcome, once every index of ``todo`` has its result: repeats get their first's."""
        results = self.results
        for i, pub in enumerate(self.pubs):
            if results[i] is None:
                results[i] = results[self.first_with_key[pub.idempotency_key]]
        return Appended([pub for pub in results if pub is not None], epoch)
