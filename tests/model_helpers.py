"""Helpers shared by the bundled-model tests (imported by name: pytest puts tests/ on sys.path)."""
from __future__ import annotations

import torch

RESPONSES = ["The cat sits on the mat.", "A dog runs.", "yes", "The answer is no, the square is blue."]


def sharpen(rm):
    """Larger head weights so that score differences are far above float noise."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in (rm.head.net[0], rm.head.net[2]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
    return rm
