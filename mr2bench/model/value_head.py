"""The value head: Linear(H, 1024) -> SiLU -> Linear(1024, 1), scores divided by sqrt(H) (the paper's head)."""
from __future__ import annotations

import math

import torch
from torch import nn

HEAD_DIM = 1024


class ValueHead(nn.Module):
    """Maps a hidden state to one scalar; N(0, 0.01^2) weights and zero biases at init."""

    def __init__(self, hidden_size: int, head_dim: int = HEAD_DIM) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.net = nn.Sequential(nn.Linear(hidden_size, head_dim), nn.SiLU(), nn.Linear(head_dim, 1))
        for layer in (self.net[0], self.net[2]):
            nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., H] -> [...]"""
        out = self.net(hidden.to(self.net[0].weight.dtype)).squeeze(-1)
        return out / math.sqrt(self.hidden_size)


def load_head_state(head: ValueHead, state: dict[str, torch.Tensor]) -> None:
    """Load a head state dict whatever its key names (release: nn.Sequential indices or named layers).

    The two Linear layers are told apart by shape: (D, H) is the first, (1, D) the second.
    """
    weights = {k: v for k, v in state.items() if k.endswith("weight") and v.dim() == 2}
    first = [k for k, v in weights.items() if v.shape == head.net[0].weight.shape]
    second = [k for k, v in weights.items() if v.shape == head.net[2].weight.shape]
    if len(first) != 1 or len(second) != 1:
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        raise ValueError(f"value head state does not match Linear({head.hidden_size}, "
                         f"{head.net[0].out_features}) -> Linear(.., 1): {shapes}")
    mapped = {"net.0.weight": state[first[0]], "net.2.weight": state[second[0]],
              "net.0.bias": state[first[0][: -len("weight")] + "bias"],
              "net.2.bias": state[second[0][: -len("weight")] + "bias"]}
    head.load_state_dict(mapped)
