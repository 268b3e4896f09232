"""The acceptance gate: a paired test that lets a real gain through and refuses noise."""

from __future__ import annotations

from promptc.optim import gate


def rows(wins: int, losses: int, n: int = 30):
    """Incumbent and candidate per-row scores with `wins` rows gained and `losses` lost."""
    inc = [0.0] * wins + [1.0] * losses + [1.0 if i % 2 else 0.0 for i in range(n - wins - losses)]
    cand = [1.0] * wins + [0.0] * losses + inc[wins + losses:]
    return inc, cand


def test_a_real_gain_passes():
    inc, cand = rows(3, 0)
    v = gate.compare(inc, cand)
    assert v.accepted and abs(v.gain - 0.1) < 1e-9 and v.rows == 30
    assert gate.compare(*rows(5, 1)).accepted
    assert gate.compare(*rows(12, 1)).accepted  # 0.06 -> 0.43: a demo set's kind of gain


def test_two_more_right_answers_in_thirty_is_noise():
    assert not gate.compare(*rows(2, 0)).accepted
    assert not gate.compare(*rows(4, 1)).accepted
    assert not gate.compare(*rows(6, 4)).accepted  # 11/30 against 9/30 with churn
    assert "within noise" in gate.compare(*rows(2, 0)).reason


def test_no_gain_or_a_loss_never_passes():
    inc, _ = rows(0, 0)
    assert not gate.compare(inc, inc).accepted
    assert not gate.compare(*rows(0, 3)).accepted
    assert not gate.compare([], []).accepted


def test_continuous_scores():
    inc = [0.2, 0.4, 0.5, 0.1, 0.3, 0.6]
    assert gate.compare(inc, [s + 0.2 for s in inc]).accepted  # every row better by the same amount
    assert not gate.compare(inc, [0.25, 0.35, 0.55, 0.05, 0.35, 0.6]).accepted


def test_hopeless_stops_a_validation_pass_early():
    inc = [1.0] * 20 + [0.0] * 10
    assert gate.hopeless(inc, [0.0] * 20)  # lost 20 rows: cannot come back
    assert not gate.hopeless(inc, [1.0] * 20)  # still could gain on the last 10
    assert not gate.hopeless(inc, [])
