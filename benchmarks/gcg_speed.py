"""GCG speed: robustperf's GCG vs a plain reference implementation of the same algorithm (issue 6), and
vs nanoGCG on the same causal LM (``--peer nanogcg``, issue 16; see `benchmarks/gcg_nanogcg.py`).

Both run in this process on the same model and prompts, with the same seed:

- **robustperf**: `robustperf.llm.attacks.GCG` - shared-prefix keys/values computed once per prompt,
  all B candidates in one forward, bf16 weights on CUDA (fp32 on CPU).
- **plain**: the textbook loop written below - fp32, the whole prompt re-run for every candidate
  chunk of ``--plain-chunk`` sequences (one candidate batch forward at a time), no prefix cache.

The two alternate prompt by prompt (timings summed per implementation), so a drifting load on a
shared machine affects both alike.

Same algorithm (Zou et al. 2023 Alg. 1 as in papers/000 App. C): one-hot gradient, top-k per
position, B single-token substitutions (random position, random top-k token), decode/re-encode
filter, best candidate by CE toward the wrong label. Reports iterations/s, seconds/iteration, final
attack success rate (papers/000 definition: among prompts the model got right before the attack)
and the speed ratio. Target (H100, Pythia-1b shape, bf16): >= 2x at equal ASR.

Usage::

    python benchmarks/gcg_speed.py                                 # CPU, neox-tiny, small settings
    python benchmarks/gcg_speed.py --shape pythia-1b --device cuda --n-candidates 128 --top-k 256 \\
        --n-iterations 10 --context-words 40 --model-vocab 50304 --out benchmarks/results/gcg_speed_h100.md
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from robustperf.llm.attacks import AttackPrompt, create_llm_attack, make_prompts, target_label
from robustperf.llm.models import count_parameters, random_neox_classifier
from robustperf.llm.tasks import Example, bundled_words, password_match
from robustperf.llm.tokenizer import allowed_token_ids, build_bpe_tokenizer, encode

log = logging.getLogger("gcg_speed")


# ---------------------------------------------------------------------------- plain reference


def plain_gcg(model: Any, tokenizer: Any, prompt: AttackPrompt, *, n_tokens: int, n_iterations: int,
              n_candidates: int, top_k: int, chunk: int, gen: torch.Generator) -> tuple[list[int], bool]:
    """GCG the textbook way: fp32, full-prompt forwards, candidates ``chunk`` at a time."""
    device = next(model.parameters()).device
    allowed = torch.tensor(allowed_token_ids(tokenizer), device=device)
    prefix = torch.tensor(prompt.prefix, device=device)
    closing = torch.tensor(prompt.closing, device=device, dtype=torch.long)
    block = torch.tensor(encode(tokenizer, "!")[:1] * n_tokens, device=device)
    target = target_label(prompt.label, model.config.num_labels)
    weight = model.get_input_embeddings().weight
    best_loss, best_block = float("inf"), block.clone()
    for _ in range(n_iterations):
        one_hot = F.one_hot(block, weight.shape[0]).to(weight.dtype).requires_grad_(True)
        emb = model.get_input_embeddings()
        embeds = torch.cat([emb(prefix), one_hot @ weight, emb(closing)])[None]
        loss = F.cross_entropy(model(inputs_embeds=embeds).logits, torch.tensor([target], device=device))
        (grad,) = torch.autograd.grad(loss, one_hot)
        scores = torch.full_like(grad, float("inf"))
        scores[:, allowed] = grad[:, allowed]
        top = (-scores).topk(min(top_k, allowed.numel()), dim=1).indices
        pos = torch.randint(0, n_tokens, (n_candidates,), generator=gen).to(device)
        pick = torch.randint(0, top.shape[1], (n_candidates,), generator=gen).to(device)
        cands = block[None].repeat(n_candidates, 1)
        cands[torch.arange(n_candidates, device=device), pos] = top[pos, pick]
        keep = [i for i, row in enumerate(cands.tolist()) if encode(tokenizer, tokenizer.decode(row)) == row]
        if not keep:
            continue
        cands = cands[keep]
        losses = []
        with torch.no_grad():
            for start in range(0, cands.shape[0], chunk):
                part = cands[start : start + chunk]
                seqs = torch.cat([prefix[None].expand(part.shape[0], -1), part,
                                  closing[None].expand(part.shape[0], -1)], dim=1)
                logits = model(input_ids=seqs).logits
                losses.append(F.cross_entropy(logits, torch.full((part.shape[0],), target, device=device),
                                              reduction="none"))
        losses_t = torch.cat(losses)
        j = int(losses_t.argmin())
        block = cands[j]
        if float(losses_t[j]) < best_loss:
            best_loss, best_block = float(losses_t[j]), block.clone()
    with torch.no_grad():
        seq = torch.cat([prefix, best_block, closing])[None]
        pred = int(model(input_ids=seq).logits.argmax(-1))
    return best_block.tolist(), pred != prompt.label


# ---------------------------------------------------------------------------- setup and timing


def _prompts(tokenizer: Any, n: int, context_words: int, seed: int) -> list[AttackPrompt]:
    rng = random.Random(seed)
    words = bundled_words()
    examples = []
    for ex in password_match(n, seed=seed):
        context = " ".join(rng.choice(words) for _ in range(context_words))
        examples.append(Example((context + "\n" if context else "") + ex.prefix, ex.closing, ex.label))
    return make_prompts(tokenizer, examples)


def _finetune(model: Any, tokenizer: Any, args: argparse.Namespace) -> None:
    """Train the random-init classifier briefly so its prediction depends on the prompt (else ASR is trivial)."""
    from robustperf.llm.config import LLMTrainingConfig
    from robustperf.llm.training import finetune

    train = _prompts(tokenizer, args.finetune_examples, args.context_words, args.seed + 1)
    seqs = [list(p.prefix) + list(p.closing) for p in train]
    fit = finetune(model, seqs, [p.label for p in train], LLMTrainingConfig(lr=args.finetune_lr, batch_size=16),
                   pad_id=tokenizer.pad_token_id, epochs=args.finetune_epochs, seed=args.seed,
                   device=next(model.parameters()).device)
    log.info("fine-tuned on %d prompts: last-epoch loss %.3f", len(seqs), fit.train_loss)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _correct_before(model: Any, prompts: list[AttackPrompt]) -> list[bool]:
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([list(p.prefix) + list(p.closing)], device=device)
            out.append(int(model(input_ids=ids).logits.argmax(-1)) == p.label)
    return out


def _asr(correct: list[bool], success: list[bool]) -> float | None:
    n = sum(correct)
    return None if n == 0 else sum(c and s for c, s in zip(correct, success, strict=True)) / n


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.set_num_threads(max(1, args.threads))
    tokenizer = build_bpe_tokenizer(args.vocab_size)
    model = random_neox_classifier(args.shape, vocab_size=args.model_vocab or len(tokenizer),
                                   pad_token_id=tokenizer.pad_token_id, seed=args.seed).to(device).eval()
    if args.finetune_examples:
        _finetune(model, tokenizer, args)
    prompts = _prompts(tokenizer, args.n_prompts + 1, args.context_words, args.seed)
    warm, prompts = prompts[:1], prompts[1:]
    fast_model = copy.deepcopy(model).to(torch.bfloat16) if device.type == "cuda" and args.bf16 else model
    fast = create_llm_attack("gcg", n_attack_tokens=args.n_attack_tokens, n_iterations=args.n_iterations,
                             n_candidates=args.n_candidates, top_k=args.top_k)
    kw = {"n_tokens": args.n_attack_tokens, "n_iterations": args.n_iterations, "n_candidates": args.n_candidates,
          "top_k": args.top_k, "chunk": args.plain_chunk}
    # warm-up (kernels, allocator) on a prompt that is not measured
    fast.perturb(fast_model, tokenizer, warm, seed=0)
    plain_gcg(model, tokenizer, warm[0], gen=torch.Generator().manual_seed(0), **kw)

    # alternate the two implementations prompt by prompt, so a drifting machine load hits both alike
    t_fast = t_plain = 0.0
    fast_success, plain_success = [], []
    gen = torch.Generator().manual_seed(args.seed)
    for i, prompt in enumerate(prompts):
        _sync(device)
        t0 = time.perf_counter()
        fast_success += fast.perturb(fast_model, tokenizer, [prompt], seed=args.seed + i).success
        _sync(device)
        t_fast += time.perf_counter() - t0
        t0 = time.perf_counter()
        plain_success.append(plain_gcg(model, tokenizer, prompt, gen=gen, **kw)[1])
        _sync(device)
        t_plain += time.perf_counter() - t0

    iters = args.n_iterations * len(prompts)
    correct_fast, correct_plain = _correct_before(fast_model, prompts), _correct_before(model, prompts)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
                  f"CPU {platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)",
        "shape": args.shape, "n_params": count_parameters(model), "vocab": model.config.vocab_size,
        "prompt_tokens": sum(len(p.prefix) + len(p.closing) for p in prompts) / len(prompts),
        "n_prompts": len(prompts), "settings": f"N={args.n_attack_tokens} T={args.n_iterations} "
        f"B={args.n_candidates} k={args.top_k}, plain chunk {args.plain_chunk}",
        "fast_dtype": str(next(fast_model.parameters()).dtype).replace("torch.", ""),
        "fast_s_per_iter": t_fast / iters, "plain_s_per_iter": t_plain / iters,
        "fast_iters_per_s": iters / t_fast, "plain_iters_per_s": iters / t_plain, "speedup": t_plain / t_fast,
        "fast_asr": _asr(correct_fast, fast_success), "plain_asr": _asr(correct_plain, plain_success),
        "torch": torch.__version__,
        "weights": (f"fine-tuned on {args.finetune_examples} prompts x {args.finetune_epochs} epochs"
                    if args.finetune_examples else "random init"),
        "command": "python benchmarks/gcg_speed.py " + " ".join(sys.argv[1:]),
    }


def to_markdown(r: dict[str, Any]) -> str:
    def f(x: Any) -> str:
        return "n/a" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))

    return "\n".join([
        f"# GCG speed: {r['shape']} ({r['n_params']:,} parameters, vocab {r['vocab']}) on {r['device']}",
        "",
        f"{r['n_prompts']} PasswordMatch prompts, {r['prompt_tokens']:.0f} tokens on average; {r['settings']}; "
        f"classifier {r['weights']}; "
        f"torch {r['torch']}; robustperf weights {r['fast_dtype']}, plain fp32.",
        "",
        "| implementation | s / iteration | iterations / s | attack success rate |",
        "| --- | --- | --- | --- |",
        f"| robustperf GCG (prefix cache, one batched forward) | {f(r['fast_s_per_iter'])} | "
        f"{f(r['fast_iters_per_s'])} | {f(r['fast_asr'])} |",
        f"| plain reference (fp32, full prompt, chunked) | {f(r['plain_s_per_iter'])} | "
        f"{f(r['plain_iters_per_s'])} | {f(r['plain_asr'])} |",
        "",
        f"Speed-up: **{r['speedup']:.2f}x**.",
        "",
        f"Command: `{r['command']}`",
        "",
    ])


def run_nanogcg(args: argparse.Namespace) -> dict[str, Any]:
    """robustperf GCG vs nanoGCG: same causal LM, prompts, N, T, B, k, init and target token."""
    from statistics import mean

    sys.path.insert(0, str(Path(__file__).parent))
    from gcg_nanogcg import compare

    device = torch.device(args.device)
    torch.set_num_threads(max(1, args.threads))
    tokenizer = build_bpe_tokenizer(args.vocab_size)
    prompts = _prompts(tokenizer, args.n_prompts, args.context_words, args.seed)
    for p in prompts:  # nanoGCG re-tokenises the text around the block: it must give the same ids
        if encode(tokenizer, tokenizer.decode(list(p.prefix))) != list(p.prefix):
            raise ValueError("prompt prefix does not survive decode/encode; choose another --seed")
    rows = compare(args, tokenizer, prompts, device)
    iters = args.n_iterations * len(prompts)
    n_steps = args.n_iterations
    curve = {k: [mean(c[j] for c in rows[f"{k}_curve"] if len(c) > j) for j in range(n_steps)] for k in ("ours", "peer")}
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
                  f"CPU {platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)",
        "shape": args.shape, "lm": args.lm_path or "random init", "n_prompts": len(prompts),
        "prompt_tokens": sum(len(p.prefix) + len(p.closing) for p in prompts) / len(prompts),
        "settings": f"N={args.n_attack_tokens} T={args.n_iterations} B={args.n_candidates} k={args.top_k}",
        "ours_iters_per_s": iters / sum(rows["ours_s"]), "peer_iters_per_s": iters / sum(rows["peer_s"]),
        "peer_iters_per_s_no_gc": iters / (sum(rows["peer_s"]) - sum(rows["peer_gc_s"])),
        "peer_gc_share": sum(rows["peer_gc_s"]) / sum(rows["peer_s"]),
        "ours_asr": mean(rows["ours_ok"]), "peer_asr": mean(rows["peer_ok"]),
        "ours_loss": mean(rows["ours_loss"]), "peer_loss": mean(rows["peer_loss"]),
        "ours_curve": curve["ours"], "peer_curve": curve["peer"], "peer_prefix_cache": args.peer_prefix_cache,
        "torch": torch.__version__, "command": "python benchmarks/gcg_speed.py " + " ".join(sys.argv[1:]),
    }


def nanogcg_markdown(r: dict[str, Any]) -> str:
    import importlib.metadata as md

    import transformers

    def curve(c: list[float]) -> str:
        return ", ".join(f"{x:.3f}" for x in c)

    return "\n".join([
        f"# GCG vs nanoGCG: {r['shape']} causal LM ({r['lm']}) on {r['device']}",
        "",
        f"{r['n_prompts']} PasswordMatch prompts, {r['prompt_tokens']:.0f} tokens on average; {r['settings']}; "
        f"target = the wrong answer's token; nanoGCG {md.version('nanogcg')}; prefix cache "
        f"{'on' if r['peer_prefix_cache'] else 'off'} for both; transformers {transformers.__version__}, torch {r['torch']}.",
        "",
        "| implementation | iterations / s | success (target answer beats true answer) | mean best CE |",
        "| --- | --- | --- | --- |",
        f"| robustperf GCG | {r['ours_iters_per_s']:.3g} | {r['ours_asr']:.2f} | {r['ours_loss']:.3f} |",
        f"| nanoGCG | {r['peer_iters_per_s']:.3g} | {r['peer_asr']:.2f} | {r['peer_loss']:.3f} |",
        f"| nanoGCG without its gc.collect() calls | {r['peer_iters_per_s_no_gc']:.3g} | (same run) | |",
        "",
        f"Speed ratio robustperf / nanoGCG: **{r['ours_iters_per_s'] / r['peer_iters_per_s']:.2f}x**; "
        f"{r['ours_iters_per_s'] / r['peer_iters_per_s_no_gc']:.2f}x against nanoGCG's time without the "
        f"gc.collect() its batch-size search runs before each candidate batch ({r['peer_gc_share']:.0%} of its "
        "time here: a heap walk whose cost grows with the Python heap, not with the model).",
        "",
        f"Best-so-far CE per iteration (mean over prompts): robustperf {curve(r['ours_curve'])}; "
        f"nanoGCG {curve(r['peer_curve'])}.",
        "",
        f"Command: `{r['command']}`",
        "",
    ])


def _nanogcg_cache_works() -> bool:
    import transformers

    return int(transformers.__version__.split(".")[0]) < 5


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", default="neox-tiny", help="a name from robustperf.llm.models.NEOX_SHAPES")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="bf16 weights on CUDA")
    p.add_argument("--n-prompts", type=int, default=4)
    p.add_argument("--n-attack-tokens", type=int, default=10)
    p.add_argument("--n-iterations", type=int, default=5)
    p.add_argument("--n-candidates", type=int, default=64)
    p.add_argument("--top-k", type=int, default=128)
    p.add_argument("--plain-chunk", type=int, default=16, help="candidates per forward in the plain version")
    p.add_argument("--context-words", type=int, default=0, help="random words before each prompt (longer prefix)")
    p.add_argument("--vocab-size", type=int, default=2048, help="BPE tokenizer vocabulary")
    p.add_argument("--model-vocab", type=int, default=None, help="embedding rows (e.g. 50304 as Pythia)")
    p.add_argument("--finetune-examples", type=int, default=0, help="fine-tune on this many prompts first")
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--finetune-lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    p.add_argument("--peer", choices=("plain", "nanogcg"), default="plain",
                   help="plain: the reference loop below; nanogcg: the nanogcg package on a causal LM")
    p.add_argument("--lm-path", default=None, help="nanogcg: a local GPT-NeoX causal-LM directory (default random init)")
    p.add_argument("--peer-prefix-cache", action=argparse.BooleanOptionalAction, default=_nanogcg_cache_works(),
                   help="nanogcg: prefix cache for both (default: on only with transformers < 5, where "
                        "nanoGCG 0.3.0's cache code works)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.peer == "nanogcg":
        try:
            import nanogcg  # noqa: F401
        except ImportError:
            print("nanogcg is not installed (pip install nanogcg); skipping the comparison")  # noqa: T201
            return
        text = nanogcg_markdown(run_nanogcg(args))
        print(text)  # noqa: T201 - a benchmark prints its table
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        return
    result = run(args)
    text = to_markdown(result)
    print(text)  # noqa: T201 - a benchmark prints its table
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
