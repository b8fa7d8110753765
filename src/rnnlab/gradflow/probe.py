"""The fixed gradient-flow probe: ‖∂L/∂h_t‖ (or ‖∂L/∂x_t‖) of the loss at each sequence's last
step on a held-out batch, measured without touching the training state (docs/gradflow.md,
"Probes"). Torch only: the Lightning callback (monitor.py) calls it."""

from __future__ import annotations

import math

import torch

from rnnlab.model.metrics import task_loss

__all__ = ["PROBE_SCALE_LOG2", "fixed_probe", "last_step_loss", "take_rows"]

# The fixed probe scales the gradient leaving the loss by a power of two (divided out exactly) so
# that about 2^56 (7e16) enters the network. The scratch cells square float32 gradients for the
# norm, and squares underflow below ~1e-19 per element: unscaled, a curve that starts near 1e-2
# reads 0 after ~17 decades of decay; scaled, ~35 decades of decay are resolved and ~3 of growth.
# A curve that overflows is measured again with a scale 2^60 smaller (twice at most).
PROBE_SCALE_LOG2 = 56


def last_step_loss(spec, output: torch.Tensor, batch: dict) -> torch.Tensor:
    """The task's loss at the final output step only (each sequence's last valid step)."""
    y, lengths = batch["y"], batch.get("lengths")
    if spec.per_step:
        rows = torch.arange(output.shape[0], device=output.device)
        if lengths is None:
            last = torch.full_like(rows, output.shape[1] - 1)
        else:
            last = (lengths.to(output.device) - 1).clamp(min=0)
        output, y = output[rows, last], y[rows, last]
    return task_loss(spec.task_kind, output, y)


def fixed_probe(model, batch: dict, loss_fn=None) -> tuple[dict[str, torch.Tensor], float]:
    """Gradient flow of ``loss_fn(output, batch)`` (default: the loss at the last step) on
    ``batch``, without touching the training state.

    Returns ``(flows, scale)``: ``model.gradient_flow()`` of a backward whose output gradient was
    multiplied by ``scale`` (divide the norms by it). No parameter ``.grad`` is written (the
    gradient is taken with respect to the recurrent stack's input only), every module's
    train/eval mode is restored, and the global RNG state is as before.
    """
    loss_fn = loss_fn or (lambda output, b: last_step_loss(model.spec, output, b))
    modes = [(module, module.training) for module in model.modules()]
    device = next(model.parameters()).device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    x, lengths = batch["x"], batch.get("lengths")
    flows: dict[str, torch.Tensor] = {}
    scale = 1.0
    try:
        # cuDNN's RNN backward refuses eval mode: the probe takes torch's own kernels there.
        with torch.random.fork_rng(devices=cuda), torch.enable_grad(), \
                torch.backends.cudnn.flags(enabled=False):
            model.eval()
            for attempt in range(3):
                model.watch_gradient_flow(True)
                output = model(x, lengths)
                inputs = model.gradient_flow_input
                loss = loss_fn(output, batch)
                (g_out,) = torch.autograd.grad(loss, output, retain_graph=True)
                if attempt == 0:
                    size = float(torch.linalg.vector_norm(g_out.double()))
                    if size > 0 and math.isfinite(size):
                        scale = 2.0 ** round(PROBE_SCALE_LOG2 - math.log2(size))
                else:  # overflowed: the gradient grows going back in time
                    scale *= 2.0 ** -60
                torch.autograd.grad(output, inputs, grad_outputs=g_out * scale)
                flows = model.gradient_flow()
                if all(bool(torch.isfinite(v).all()) for v in flows.values()):
                    break
    finally:
        model.watch_gradient_flow(False)
        for module, mode in modes:
            module.training = mode
    return flows, scale


def take_rows(batch: dict, size: int | None) -> dict:
    """The first ``size`` rows of every tensor in a batch (all of it for ``None``)."""
    if size is None:
        return batch
    return {k: v[:size] if isinstance(v, torch.Tensor) and v.dim() > 0 else v
            for k, v in batch.items()}
