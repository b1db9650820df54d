"""The value head and the response representation it reads, as ``reward_model_config.json`` describes them.

The release (``mr2rm/models/reward_model.py``): an ``nn.Sequential`` MLP Linear(D_in, D) -> act -> Linear(D, 1)
or one Linear(D_in, 1); scores divided by sqrt(H). mr2bench's default is the paper's head: MLP, D = 1024, SiLU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

HEAD_DIM = 1024
ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh,
                                           "selu": nn.SELU}
HEAD_TYPES = ("mlp", "linear")
# the release's names; "first_last_concat" doubles the head's input
REPR_MODES = ("last", "first", "first_last_concat", "first_last_add", "first_last_sub", "response_mean")


@dataclass(frozen=True)
class HeadSpec:
    """What a checkpoint's head is: validated on construction, so a bad config fails with one clear line."""

    hidden_size: int                 # H of the backbone (the score is divided by sqrt(H))
    head_type: str = "mlp"
    hidden_dim: int | None = HEAD_DIM  # None = the input dim (the release's rule)
    activation: str = "silu"
    repr_mode: str = "last"

    def __post_init__(self) -> None:
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"value_head_type {self.head_type!r} is not supported; choose from {list(HEAD_TYPES)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"value_head_activation {self.activation!r} is not supported; "
                             f"choose from {sorted(ACTIVATIONS)}")
        if self.repr_mode not in REPR_MODES:
            raise ValueError(f"resp_repr_mode {self.repr_mode!r} is not supported; choose from {list(REPR_MODES)}")
        if self.hidden_dim is not None and self.hidden_dim < 1:
            raise ValueError(f"value_head_hidden_dim must be positive, got {self.hidden_dim}")

    @property
    def input_dim(self) -> int:
        return 2 * self.hidden_size if self.repr_mode == "first_last_concat" else self.hidden_size


class ValueHead(nn.Module):
    """Maps a response representation to one scalar; N(0, 0.01^2) weights and zero biases at init."""

    def __init__(self, hidden_size: int, head_dim: int = HEAD_DIM, spec: HeadSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or HeadSpec(hidden_size, hidden_dim=head_dim)
        self.hidden_size = self.spec.hidden_size
        d_in = self.spec.input_dim
        if self.spec.head_type == "linear":
            self.net = nn.Sequential(nn.Linear(d_in, 1))
        else:
            d = self.spec.hidden_dim or d_in
            self.net = nn.Sequential(nn.Linear(d_in, d), ACTIVATIONS[self.spec.activation](), nn.Linear(d, 1))
        for layer in self.linears:
            nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            nn.init.zeros_(layer.bias)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def forward(self, rep: torch.Tensor) -> torch.Tensor:
        """[..., D_in] -> [...]"""
        out = self.net(rep.to(self.net[0].weight.dtype)).squeeze(-1)
        return out / math.sqrt(self.hidden_size)


def represent(hidden: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, mode: str) -> torch.Tensor:
    """[B, L, H] hidden states -> [B, N, D_in] per response, as the release builds ``resp_repr``.

    ``starts``/``ends`` [B, N] are the first and the scored token of each response (inclusive).
    """
    def at(idx: torch.Tensor) -> torch.Tensor:
        return hidden.gather(1, idx[..., None].expand(-1, -1, hidden.shape[-1]))

    if mode == "last":
        return at(ends)
    if mode == "first":
        return at(starts)
    if mode == "first_last_concat":
        return torch.cat([at(starts), at(ends)], dim=-1)
    if mode == "first_last_add":
        return at(starts) + at(ends)
    if mode == "first_last_sub":
        return at(ends) - at(starts)
    if mode == "response_mean":
        pos = torch.arange(hidden.shape[1], device=hidden.device)
        inside = (pos[None, None] >= starts[..., None]) & (pos[None, None] <= ends[..., None])  # [B, N, L]
        weights = inside.to(hidden.dtype) / inside.sum(-1, keepdim=True).clamp(min=1).to(hidden.dtype)
        return weights @ hidden
    raise ValueError(f"resp_repr_mode {mode!r} is not supported; choose from {list(REPR_MODES)}")


def load_head_state(head: ValueHead, state: dict[str, torch.Tensor]) -> None:
    """Load a head state dict whatever its key names (release: nn.Sequential indices or a bare Linear).

    The Linear layers are told apart by shape: (D, D_in) is the first, (1, D) the last.
    """
    linears = head.linears
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    mapped: dict[str, torch.Tensor] = {}
    names = [n for n, m in head.net.named_children() if isinstance(m, nn.Linear)]
    for name, layer in zip(names, linears):
        keys = [k for k, v in state.items() if k.endswith("weight") and tuple(v.shape) == tuple(layer.weight.shape)]
        if len(keys) != 1:
            raise ValueError(f"value head weights {shapes} do not match the configured head "
                             f"({head.spec.head_type}, input {head.spec.input_dim}, "
                             f"hidden {head.spec.hidden_dim}); check reward_model_config.json")
        bias = keys[0][: -len("weight")] + "bias"
        if bias not in state:
            raise ValueError(f"value head state has {keys[0]} but no {bias}: {shapes}")
        mapped[f"net.{name}.weight"], mapped[f"net.{name}.bias"] = state[keys[0]], state[bias]
    if len(mapped) != len(state):
        raise ValueError(f"value head state {shapes} has tensors the configured head does not use "
                         f"({head.spec.head_type}); check value_head_type in reward_model_config.json")
    head.load_state_dict(mapped)
