"""LLM robustness (papers/000, REFERENCE.md section 5): classifiers, tasks, GCG, RandomToken, adversarial training.

Modules (torch is imported only by the ones that need it):

- `config`: `LLMConfig`, `load_llm_config` (YAML + ``--set`` overrides, run ids).
- `tasks`: PasswordMatch, WordLength (from the bundled word list), Spam, IMDB (local files); `TASKS`.
- `tokenizer`, `models`: offline byte-level BPE, random-init GPT-NeoX shapes, local HF directories.
- `attacks`: `create_llm_attack("gcg" | "random_token", **params)`, `LLM_ATTACKS`, `AttackPrompt`.
- `metrics`: `attack_success_rate`, `min_median_max`.
- `pipeline`: `run_finetune`, `run_attack`, `run_advtrain` (runs in the shared run store).
- `study`: grids of adversarial-training runs -> ASR-vs-round CSV.
"""

from robustperf.llm.attack_config import GCGConfig, RandomTokenConfig, matching_random_token
from robustperf.llm.config import LLMConfig, llm_config_from_dict, load_llm_config
from robustperf.llm.metrics import attack_success_rate, min_median_max

__all__ = [
    "GCGConfig",
    "LLMConfig",
    "RandomTokenConfig",
    "attack_success_rate",
    "llm_config_from_dict",
    "load_llm_config",
    "matching_random_token",
    "min_median_max",
]
