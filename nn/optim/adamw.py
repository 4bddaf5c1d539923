"""AdamW (Loshchilov & Hutter, 2019): Adam with the weight decay taken out of the gradient."""

from .adam import Adam


class AdamW(Adam):
    """Adam with decoupled weight decay, exactly as ``torch.optim.AdamW``::

        p = p * (1 - lr * weight_decay)      before Adam's step, which then sees the bare gradient

    In Adam's L2 form the decay term ``weight_decay * p`` enters ``m`` and ``v`` and is divided by
    ``sqrt(v_hat)``, so parameters with large gradients are decayed less; here every parameter
    shrinks by the same factor per step. The default ``weight_decay`` is 1e-2 (Adam's is 0).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)
