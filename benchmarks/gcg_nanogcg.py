"""GCG against nanoGCG (the `nanogcg` package on PyPI) on the same causal LM, prompts, budget, B and k.

Imported by `benchmarks/gcg_speed.py --peer nanogcg`. nanoGCG attacks a causal LM toward a target
string; robustperf's GCG attacks a classifier toward the wrong label. To compare them on one objective:

- the model is a GPT-NeoX causal LM of the chosen shape (``--lm-path``: any local causal-LM directory,
  e.g. a `robustperf llm pretrain` checkpoint; else random init);
- robustperf sees it as a classifier over the whole vocabulary (the LM's unembedding as the ``score``
  head, so logits are the next-token logits at the last prompt token), and its target "label" is the
  token of the wrong answer (" Granted" for a wrong password, " Denied" for the right one);
- nanoGCG gets the same text before and after the attack block (no chat template: the prompt's prefix
  and its closing ``---`` separator) and that token as its target string.

Both then minimise the same cross-entropy of the same next-token logits, with N block tokens initialised
to "!", T iterations, B candidates from the top-k tokens per position, one substitution per candidate,
the decode/re-encode filter and ASCII-only tokens, and the same prefix-cache setting: nanoGCG 0.3.0's
cache code indexes the cache as a list of tuples, which transformers 5 no longer returns, so with
transformers >= 5 both run without it (``--no-peer-prefix-cache``, the default there). Success (both): the target answer's logit beats the
true answer's logit after the attack.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

import torch

from robustperf.llm.attacks import AttackPrompt, create_llm_attack
from robustperf.llm.tokenizer import encode

log = logging.getLogger("gcg_speed")

ANSWERS = (" Denied", " Granted")  # PasswordMatch label 0, 1 (the template's own wording)


def lm_and_classifier(shape: str, tokenizer: Any, *, seed: int, lm_path: str | None, device: torch.device) -> tuple[Any, Any]:
    """(causal LM, classifier view sharing its weights: score head = the LM's unembedding, num_labels = V)."""
    from transformers import GPTNeoXForCausalLM, GPTNeoXForSequenceClassification

    from robustperf.llm.pretrain import causal_lm

    if lm_path:
        lm = GPTNeoXForCausalLM.from_pretrained(lm_path)
    else:
        lm = causal_lm(shape, vocab_size=len(tokenizer), eos_id=tokenizer.eos_token_id, max_length=2048, seed=seed)
    cfg = lm.config.__class__.from_dict(lm.config.to_dict())
    cfg.num_labels = cfg.vocab_size
    clf = GPTNeoXForSequenceClassification(cfg)
    clf.gpt_neox = lm.gpt_neox  # shared body
    clf.score = lm.get_output_embeddings()  # (V, d), no bias: classifier logits = next-token logits
    return lm.to(device).eval(), clf.to(device).eval()


def answer_ids(tokenizer: Any) -> tuple[int, int]:
    ids = [encode(tokenizer, a) for a in ANSWERS]
    if any(len(i) != 1 for i in ids):
        raise ValueError(f"the answers {ANSWERS} must be single tokens of this tokenizer, got {ids}")
    return ids[0][0], ids[1][0]


def _success(lm: Any, ids: list[int], target: int, other: int) -> tuple[bool, float]:
    """(target answer beats the true answer, CE of the target over the vocabulary) at the last position."""
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([ids], device=next(lm.parameters()).device)).logits[0, -1].float()
    ce = float(torch.nn.functional.cross_entropy(logits[None], torch.tensor([target], device=logits.device)))
    return bool(logits[target] > logits[other]), ce


@contextlib.contextmanager
def _timed_gc(sink: list[float]) -> Iterator[None]:
    """Time every gc.collect() call (nanoGCG's batch-size search calls it before each candidate batch; on a
    small model its cost is the heap walk, not the attack, so it is reported apart)."""
    original = gc.collect

    def collect(*args: Any) -> int:
        t0 = time.perf_counter()
        try:
            return original(*args)
        finally:
            sink.append(time.perf_counter() - t0)

    gc.collect = collect  # type: ignore[assignment]
    try:
        yield
    finally:
        gc.collect = original  # type: ignore[assignment]


def compare(args: Any, tokenizer: Any, prompts: list[AttackPrompt], device: torch.device) -> dict[str, Any]:
    """Time both on every prompt (alternating), and record success and best loss per prompt."""
    import nanogcg

    lm, clf = lm_and_classifier(args.shape, tokenizer, seed=args.seed, lm_path=args.lm_path, device=device)
    answers = answer_ids(tokenizer)
    vocab = clf.config.num_labels
    ours = create_llm_attack("gcg", n_attack_tokens=args.n_attack_tokens, n_iterations=args.n_iterations,
                             n_candidates=args.n_candidates, top_k=args.top_k, init_token="!",
                             prefix_cache=args.peer_prefix_cache)  # same footing as nanoGCG
    init = "!" * args.n_attack_tokens
    if encode(tokenizer, init) != encode(tokenizer, "!") * args.n_attack_tokens:
        raise ValueError("'!' repeated merges under this tokenizer; the two inits would differ")
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"  # plain text, no template
    rows: dict[str, list[Any]] = {"ours_s": [], "peer_s": [], "ours_ok": [], "peer_ok": [], "ours_loss": [],
                                  "peer_loss": [], "ours_curve": [], "peer_curve": [], "peer_gc_s": []}
    for i, p in enumerate(prompts):
        target, other = answers[1 - p.label], answers[p.label]
        # robustperf: the "label" whose successor (target_label = label + 1 mod V) is the target token
        q = AttackPrompt(p.prefix, p.closing, (target - 1) % vocab)
        t0 = time.perf_counter()
        res = ours.perturb(clf, tokenizer, [q], seed=args.seed + i)
        rows["ours_s"].append(time.perf_counter() - t0)
        ok, ce = _success(lm, res.ids[0], target, other)
        rows["ours_ok"].append(ok)
        rows["ours_loss"].append(min(res.losses[0]))
        rows["ours_curve"].append(res.losses[0][1:])
        text = tokenizer.decode(list(p.prefix)) + "{optim_str}" + tokenizer.decode(list(p.closing))
        cfg = nanogcg.GCGConfig(num_steps=args.n_iterations, optim_str_init=init, search_width=args.n_candidates,
                                topk=args.top_k, n_replace=1, buffer_size=0, early_stop=False,
                                use_prefix_cache=args.peer_prefix_cache, allow_non_ascii=False, filter_ids=True,
                                seed=args.seed + i, verbosity="WARNING")
        gc_times: list[float] = []
        t0 = time.perf_counter()
        with _timed_gc(gc_times):
            out = nanogcg.run(lm, tokenizer, [{"role": "user", "content": text}], tokenizer.decode([target]), cfg)
        rows["peer_s"].append(time.perf_counter() - t0)
        rows["peer_gc_s"].append(sum(gc_times))
        peer_ids = [*p.prefix, *encode(tokenizer, out.best_string), *p.closing]
        ok, ce = _success(lm, peer_ids, target, other)
        rows["peer_ok"].append(ok)
        rows["peer_loss"].append(float(out.best_loss))
        rows["peer_curve"].append([min(out.losses[: j + 1]) for j in range(len(out.losses))])
        log.info("prompt %d: robustperf %.2fs loss %.3f ok %s | nanoGCG %.2fs loss %.3f ok %s", i, rows["ours_s"][-1],
                 rows["ours_loss"][-1], rows["ours_ok"][-1], rows["peer_s"][-1], rows["peer_loss"][-1],
                 rows["peer_ok"][-1])
    torch.use_deterministic_algorithms(False)  # nanoGCG switches it on when given a seed
    return rows
