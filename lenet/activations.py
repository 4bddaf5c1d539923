"""What LeNet5 computes on the way from a digit to its logits: every stage's output, by name.

A stage is a named layer of the model followed by the layers that only reshape or rectify its
output, so that each map shown is what the next stage reads::

    C1   C1 + relu1          (N, 6, 24, 24)
    S2   S2                  (N, 6, 12, 12)
    C3   C3 + relu3          (N, 16, 8, 8)
    S4   S4                  (N, 16, 4, 4)
    C5   flatten + C5 + relu5 (N, 120)
    F6   F6 + relu6          (N, 84)
    out  out                 (N, 10)    the logits

A model with a ``stages`` attribute (``lenet.lenet1998.LeNet1998``) names its own stages the same way.
The layers are run one by one by their attribute names, in eval mode, so nothing is stored on the
model and threads may share it (as for ``predict``).
"""

STAGES = (
    ("C1", ("C1", "relu1")),
    ("S2", ("S2",)),
    ("C3", ("C3", "relu3")),
    ("S4", ("S4",)),
    ("C5", ("flatten", "C5", "relu5")),
    ("F6", ("F6", "relu6")),
    ("out", ("out",)),
)
STAGE_NAMES = tuple(name for name, _ in STAGES)


def stage_activations(model, x):
    """``{stage name: output}`` for the normalized input ``x`` (N, *model.input_shape), in the order of the stages.

    The stages are ``model.stages`` if the model has them, else LeNet5's ``STAGES``.

    ``model`` must be in eval mode (``model.eval()``): a training-mode pass would overwrite what
    the layers keep for a backward pass. ``x`` is what ``model.preprocess`` returns.
    """
    if model.training:
        raise RuntimeError("stage_activations: call model.eval() first (it must not disturb training state)")
    outputs = {}
    for stage, layer_names in getattr(model, "stages", STAGES):
        for name in layer_names:
            x = getattr(model, name)(x)
        outputs[stage] = x
    return outputs
