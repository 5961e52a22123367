"""What a process keeps so that its hot paths need not work it out again: a verified key record,
a request's plan, an answer's headers, a packed MGET, a parsed rollout. Each memo is bounded,
because what keys it comes from clients (a header, a query string), and is emptied when full:
that costs a few recomputations, never a wrong answer, since each memo keeps only what its key
alone decides."""


class Kept(dict):
    """A memo of at most `most` entries, emptied when a new one would not fit."""

    def __init__(self, most: int):
        super().__init__()
        self.most = most

    def keep(self, key, value):
        """Keep `value` under `key` and return it."""
        if len(self) >= self.most and key not in self:
            self.clear()
        self[key] = value
        return value
