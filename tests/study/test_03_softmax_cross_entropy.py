"""docs/study/03-softmax-cross-entropy.md, checked against nn.softmax and nn.CrossEntropyLoss."""

import numpy as np

import nn
from tests.study.worked_examples import worked_example


def test_three_logits_give_p_minus_onehot(backend):
    """03-softmax-cross-entropy.md § Worked example: three logits. p = softmax(z), L = −log p[y], dz = p − y."""
    with worked_example("03-softmax-cross-entropy.md", "three-logits") as page:
        z = page.array("z")
        criterion = nn.CrossEntropyLoss()
        loss = criterion(z, np.array(page.scalar("label")))
        page.check("p", nn.softmax(z))
        page.check("loss", loss)
        page.check("dz", criterion.backward())


def test_huge_logits_do_not_overflow(backend):
    """03-softmax-cross-entropy.md § Worked example: huge logits. Subtracting max(z) keeps exp finite."""
    with worked_example("03-softmax-cross-entropy.md", "huge-logits") as page:
        z = page.array("z")
        page.check("p", nn.softmax(z))
        page.check("loss", nn.CrossEntropyLoss()(z, np.array(page.scalar("label"))))


def test_the_batch_mean_divides_each_gradient_by_n(backend):
    """03-softmax-cross-entropy.md § Worked example: a batch, and the 1/N."""
    with worked_example("03-softmax-cross-entropy.md", "batch-mean") as page:
        criterion = nn.CrossEntropyLoss()
        page.check("loss", criterion(page.array("z"), np.array(page.scalar("label"))))
        page.check("dz", criterion.backward())
