"""The sequence plumbing every multi-layer cell shares: argument checks, (batch-first or unbatched)
input to time-major, ``lengths`` to a validity mask, and back.

A step past a sequence's end (``t >= lengths[b]``) is *frozen*: it keeps the state, its output is
0, and the state's gradient passes through it unchanged, exactly as torch.nn on a packed sequence.
Only torch is imported here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def check_module_args(input_size, hidden_size, num_layers, dropout) -> None:
    """One ``ValueError`` line for a bad constructor argument, as torch.nn words it."""
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name} must be a positive int; got {v!r}")
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
        raise ValueError(f"num_layers must be an int >= 1; got {num_layers!r}")
    # [0, 1] as torch.nn.GRU takes it (the cells are its drop-in twins); rnnlab's model.dropout
    # refuses 1 itself (schemas.BOUNDS), since a run that drops every activation learns nothing.
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
        raise ValueError(f"dropout must be a number in [0, 1]; got {dropout!r}")
    if dropout > 0 and num_layers == 1:
        warnings.warn(f"dropout={dropout} has no effect with num_layers=1 (it acts between layers)",
                      UserWarning, stacklevel=4)


def lengths_mask(lengths: Tensor, steps: int) -> Tensor:
    """``(steps, B)`` bool, time-major: ``mask[t, b] = t < lengths[b]``, on ``lengths``' device.
    The one lengths-to-mask helper (cells, task loss, gradient-flow statistics)."""
    return torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths.unsqueeze(0)


@dataclass
class Sequence:
    """A batch made time-major. ``x`` holds only the first ``run_steps`` steps (the longest
    sequence); ``mask`` is ``None`` when every sequence runs that long."""

    x: Tensor  # (run_steps, B, I)
    hx: tuple[Tensor, ...] | None  # each (num_layers, B, H)
    mask: Tensor | None  # (run_steps, B, 1) bool
    steps: int  # T of the caller's input
    unbatched: bool
    batch_first: bool

    @classmethod
    def of(cls, input: Tensor, hx: tuple[Tensor, ...] | None, lengths, *, batch_first: bool,
           input_size: int, hidden_size: int, num_layers: int) -> Sequence:
        if input.dim() not in (2, 3):
            raise ValueError("input must be 2-D (unbatched) or 3-D; "
                             f"got shape {tuple(input.shape)}")
        unbatched = input.dim() == 2
        if unbatched:
            input = input.unsqueeze(1)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx)
        elif batch_first:
            input = input.transpose(0, 1)
        steps, batch, feat = input.shape
        if feat != input_size:
            raise ValueError(f"input.size(-1) must be input_size={input_size}; got {feat}")
        if hx is not None:
            for h in hx:
                if h.shape != (num_layers, batch, hidden_size):
                    raise ValueError(
                        "hx must have shape (num_layers, batch, hidden_size)="
                        f"{(num_layers, batch, hidden_size)}; got {tuple(h.shape)}")
        mask = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths)
            if lengths.dim() != 1 or lengths.numel() != batch:
                raise ValueError(f"lengths must be a 1-D tensor of batch size {batch}; got shape "
                                 f"{tuple(lengths.shape)}")
            lengths_cpu = lengths.detach().to("cpu", torch.int64)
            if batch and (int(lengths_cpu.min()) < 0 or int(lengths_cpu.max()) > steps):
                raise ValueError(f"lengths must lie in [0, {steps}] (the sequence length)")
            run_steps = int(lengths_cpu.max()) if batch else 0
            if batch and int(lengths_cpu.min()) < run_steps:
                mask = lengths_mask(lengths_cpu, run_steps).unsqueeze(-1).to(input.device)
            input = input[:run_steps]
        return cls(input, hx, mask, steps, unbatched, batch_first)

    def restore(self, output: Tensor, finals: tuple[Tensor, ...]):
        """(run_steps, B, H) time-major output and (num_layers, B, H) finals -> the caller's
        layout, the output zero-padded back to ``steps``."""
        if output.shape[0] < self.steps:
            output = F.pad(output, (0, 0, 0, 0, 0, self.steps - output.shape[0]))
        if self.unbatched:
            return output.squeeze(1), tuple(f.squeeze(1) for f in finals)
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, finals
