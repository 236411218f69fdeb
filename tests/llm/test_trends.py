"""ASR trends with rounds and size against the seed spread (llm.trends), on planted study rows."""

from __future__ import annotations

from robustperf.llm.trends import FALLS, FLAT, RISES, asr_trends, trends_markdown


def rows(asr_by_model_round_seed, attack="gcg"):
    params = {"tiny": 3.6e5, "small": 9.2e5, "medium": 2.6e6}
    return [{"model": m, "n_params": params[m], "task": "password_match", "attack": attack, "eval_attack": attack,
             "seed": s, "round": r, "asr": a, "n_attacked": 120, "clean_acc": 0.97}
            for (m, r, s), a in asr_by_model_round_seed.items()]


def test_a_fall_larger_than_the_seed_spread_is_called_a_fall():
    data = {}
    for m, base in (("tiny", 0.9), ("small", 0.7), ("medium", 0.5)):
        for s, jitter in enumerate((-0.02, 0.0, 0.02)):
            for r in range(4):
                data[(m, r, s)] = base - 0.1 * r + jitter
    (t,) = asr_trends(rows(data))
    assert [e["verdict"] for e in t["rounds"]] == [FALLS] * 3
    assert abs(t["rounds"][0]["change"] + 0.3) < 1e-9 and abs(t["rounds"][0]["seed_spread"] - 0.04) < 1e-9
    assert all(abs(sl + 0.1) < 1e-9 for sl in t["rounds"][0]["seed_slopes_per_round"])
    assert [s["verdict"] for s in t["size"]] == [FALLS, FALLS] and t["size"][0]["slope_per_decade_params"] < 0
    assert t["rounds"][0]["min_n_attacked"] == 120
    assert "falls" in trends_markdown([t])


def test_changes_inside_the_seed_spread_are_not_trends():
    data = {}
    for m in ("tiny", "medium"):
        for s, level in enumerate((0.3, 0.6, 0.9)):  # seeds disagree by 0.6
            for r in range(3):
                data[(m, r, s)] = level + (0.05 * r if m == "tiny" else -0.05 * r)
    (t,) = asr_trends(rows(data))
    assert [e["verdict"] for e in t["rounds"]] == [FLAT, FLAT]
    assert [s["verdict"] for s in t["size"]] == [FLAT, FLAT]


def test_a_rise_is_reported_as_a_rise_and_attacks_are_kept_apart():
    data = {("tiny", r, s): 0.2 + 0.2 * r + 0.01 * s for r in range(3) for s in range(3)}
    out = asr_trends(rows(data, "gcg") + rows(data, "random_token"))
    assert [t["attack"] for t in out] == ["gcg", "random_token"]
    assert out[0]["rounds"][0]["verdict"] == RISES and out[0]["size"] == []
    assert "one model size only" in trends_markdown(out)
