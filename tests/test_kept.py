"""core.kept.Kept: the one bounded memo of the hot paths (keys, plans, answer heads, MGETs)."""

from core.kept import Kept


def test_a_memo_never_holds_more_than_its_bound_and_a_kept_key_is_updated_in_place():
    memo = Kept(3)
    for key in "abc":
        assert memo.keep(key, key.upper()) == key.upper()
    memo.keep("b", "B2")  # already kept: nothing is emptied
    assert memo == {"a": "A", "b": "B2", "c": "C"}
    memo.keep("d", "D")  # a client sending ever new keys empties it instead of growing it
    assert memo == {"d": "D"}
