"""The autocast policy of the scratch cells' autograd Functions: a backward runs under the
autocast state its forward ran in (recurrence.py's and minrnn.py's). Only torch is imported
here."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

__all__ = ["record_autocast", "under_forward_autocast"]


def record_autocast(ctx, device: str) -> None:
    """Keep the forward's autocast state for ``device`` on ``ctx`` for
    :func:`under_forward_autocast`."""
    ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))


def under_forward_autocast(backward: Callable) -> Callable:
    """Run an autograd Function's ``backward`` under the autocast state its forward ran in
    (:func:`record_autocast`), wherever the backward is called from: inside the context or after
    it. ``torch.amp.custom_bwd``'s rule, for whatever device the inputs are on. The gradients
    then do not depend on where the caller put its ``backward()`` (without it they differed by
    ~0.2% in eager mode; the inf of the compiled path came from the state gradient's dtype,
    which ``_make_backward`` now holds fixed)."""

    @functools.wraps(backward)
    def wrapped(ctx, *grads):
        device, enabled, dtype = ctx.autocast
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            return backward(ctx, *grads)

    return wrapped
