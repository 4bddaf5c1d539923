"""The one mechanism that decides how every module runs: its plan on the numba backend, else its own code.

``Module.__call__`` calls ``forward`` here. A module without a plan (``planner.plan_of``) runs its
own ``forward``, which saves what its backward needs. A planned module runs its plan; in training
mode what the plan saved (``PlanSaved``) is kept on the module as any forward's is, and the
module's ``backward`` entry (``nn.module``), finding it, runs the plan's backward, not the reference.
"""

from ..backend import NUMBA_AVAILABLE

if NUMBA_AVAILABLE:  # without numba the backend is always "numpy": nothing is ever planned
    from .planner import plan_of
else:  # pragma: no cover - only on machines without numba
    def plan_of(module):
        return None


class PlanSaved:
    """What a plan's training forward saved; its ``backward`` is the plan's, from that."""

    __slots__ = ("plan", "saved")

    def __init__(self, plan, saved):
        self.plan, self.saved = plan, saved

    def backward(self, *args, need_input_grad=True, **kwargs):
        return self.plan.backward(self.saved, *args, need_input_grad=need_input_grad, **kwargs)


def forward(module, *args, **kwargs):
    """``module``'s forward on ``args``, as the current backend runs it."""
    plan = plan_of(module)
    if plan is None:
        return module.forward(*args, **kwargs)
    if module.training:
        # The layers the plan computes in compiled stages never see this forward: what an earlier
        # forward saved on them would be stale, so it goes (before the plan runs: it may apply a layer twice).
        for layer in plan.fused_layers:
            if layer is not module:
                layer.forget_saved()
    out, saved = plan.forward(*args, training=module.training, **kwargs)
    if module.training:
        module.keep_saved(PlanSaved(plan, saved))
    return out
