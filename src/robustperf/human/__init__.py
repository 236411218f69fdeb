"""The human-alignment study of papers/001 Section 4 and Appendix G.

`study` turns an evaluation's adversarial export into a study directory, `schema` lays out and opens
its database, `db` stores labellers, sessions and answers (one commit per answer), `app` is the
labelling web app (and the public quiz, over its own image pool), `machine` adds machine labellers (an
OpenAI-compatible chat endpoint with the paper's GPT-4 prompt, or a local robustperf model), `scoring`
computes per-labeller accuracy, validity, the deceptive/ambiguous split and Table 4, `agreement`
Fleiss' kappa and Krippendorff's alpha on incomplete designs, and `report` draws Figure 8 and the
study's HTML section.

Only `study` is imported here; the web stack (starlette, uvicorn, sqlalchemy) is the
``human`` extra and is imported by the modules that need it.
"""

from robustperf.human.study import (
    CIFAR10_CLASSES,
    Study,
    StudyError,
    StudyImage,
    create_study,
    create_study_from_run,
    load_study,
)

__all__ = [
    "CIFAR10_CLASSES",
    "Study",
    "StudyError",
    "StudyImage",
    "create_study",
    "create_study_from_run",
    "load_study",
]
