"""Week 3 reference: dynamic loss scaling for fp16 training, as ``torch.amp.GradScaler`` does it.

float16 cannot represent magnitudes below 2^-24 ~ 6e-8 (they round to zero), and many gradients
of a language model are that small. Multiplying the loss by a large ``scale`` multiplies every
gradient by the same factor (the chain rule is linear), lifting them into fp16's range; the
gradients are divided by ``scale`` again (in fp32) before the optimizer uses them. Too large a
scale overflows to inf: then the step is skipped and the scale halved. After ``growth_interval``
clean steps in a row the scale doubles again, so it hovers just below the overflow limit.

Usage (the same four calls as GradScaler)::

    scaler = DynamicLossScaler()
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)      # optional: before gradient clipping
    scaler.step(optimizer)          # skipped if a gradient is inf/NaN
    scaler.update()
"""

from __future__ import annotations

import torch

FP32_MAX = torch.finfo(torch.float32).max


def unscale_grads_(params, scale: float) -> bool:
    """Divide every ``.grad`` by ``scale`` in place; True if any gradient holds inf or NaN."""
    inv_scale = torch.tensor(1.0 / scale, dtype=torch.float32)  # GradScaler multiplies by the fp32 inverse
    found_inf = False
    for p in params:
        if p.grad is None:
            continue
        p.grad.mul_(inv_scale)
        found_inf |= not bool(torch.isfinite(p.grad).all())
    return found_inf


def update_scale(scale: float, growth_tracker: int, found_inf: bool, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000) -> tuple[float, int]:
    """The next (scale, growth_tracker): back off on inf/NaN, grow after ``growth_interval`` clean steps."""
    if found_inf:
        return scale * backoff_factor, 0
    growth_tracker += 1
    if growth_tracker == growth_interval:
        grown = scale * growth_factor
        return (grown if grown <= FP32_MAX else scale), 0  # the scale is an fp32 number: never let it reach inf
    return scale, growth_tracker


class DynamicLossScaler:
    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        self.scale_value, self.growth_tracker = float(init_scale), 0
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self.found_inf: bool | None = None  # None: not unscaled yet in this step
        self.skipped_steps = 0

    def get_scale(self) -> float:
        return self.scale_value

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.scale_value

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        if self.found_inf is not None:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update()")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.found_inf = unscale_grads_(params, self.scale_value)

    def step(self, optimizer: torch.optim.Optimizer):
        if self.found_inf is None:
            self.unscale_(optimizer)
        if self.found_inf:
            self.skipped_steps += 1
            return None  # gradients are inf/NaN: leave the parameters alone
        return optimizer.step()

    def update(self) -> None:
        if self.found_inf is None:
            raise RuntimeError("update() needs a step() (or unscale_()) first")
        self.scale_value, self.growth_tracker = update_scale(
            self.scale_value, self.growth_tracker, self.found_inf,
            self.growth_factor, self.backoff_factor, self.growth_interval)
        self.found_inf = None

    def state_dict(self) -> dict:
        return dict(scale=self.scale_value, growth_tracker=self.growth_tracker, growth_factor=self.growth_factor,
                    backoff_factor=self.backoff_factor, growth_interval=self.growth_interval)

    def load_state_dict(self, state: dict) -> None:
        self.scale_value, self.growth_tracker = float(state["scale"]), int(state["growth_tracker"])
        self.growth_factor, self.backoff_factor = state["growth_factor"], state["backoff_factor"]
        self.growth_interval = state["growth_interval"]
