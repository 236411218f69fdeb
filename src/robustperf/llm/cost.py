"""Compute accounting of papers/000 (REFERENCE.md section 5): plain-float FLOP formulas.

A forward pass costs 2 x tokens x parameters, a backward pass 4 x tokens x parameters (the paper's
convention, after Kaplan et al. 2020). Attack FLOPs count every sequence the attack runs at its full
length, even where the shared prefix is served from a cache, so numbers compare across implementations.
"""

from __future__ import annotations


def forward_flops(tokens: float, n_params: float) -> float:
    """FLOPs of forward passes over ``tokens`` tokens: 2 x tokens x params."""
    return 2.0 * float(tokens) * float(n_params)


def backward_flops(tokens: float, n_params: float) -> float:
    """FLOPs of backward passes over ``tokens`` tokens: 4 x tokens x params."""
    return 4.0 * float(tokens) * float(n_params)


def train_flops(tokens: float, n_params: float) -> float:
    """One training step's FLOPs over ``tokens`` tokens: forward + backward = 6 x tokens x params."""
    return forward_flops(tokens, n_params) + backward_flops(tokens, n_params)
