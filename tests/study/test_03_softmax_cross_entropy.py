"""docs/study/03-softmax-cross-entropy.md, checked against nn.softmax and nn.CrossEntropyLoss."""

import numpy as np

import nn
from tests.study.worked_examples import read_example, worked_example


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


def test_the_jacobian_route_gives_the_same_gradient(backend):
    """03-softmax-cross-entropy.md § Worked example: the Jacobian route. J = diag(p) − ppᵀ, checked by
    central differences of nn.softmax; Jᵀ·(−onehot/p[y]) is CrossEntropyLoss's dz."""
    three = read_example("03-softmax-cross-entropy.md", "three-logits")
    z, label = three.array("z"), np.array(three.scalar("label"))
    p = nn.softmax(z)[0]
    with worked_example("03-softmax-cross-entropy.md", "softmax-jacobian") as page:
        jacobian = np.diag(p) - np.outer(p, p)
        eps = 1e-6
        numeric = np.stack([(nn.softmax(z + eps * e)[0] - nn.softmax(z - eps * e)[0]) / (2 * eps)
                            for e in np.eye(3)], axis=1)  # column c: ∂p/∂z[c]
        np.testing.assert_allclose(jacobian, numeric, atol=1e-9)
        page.check("J", jacobian)
        page.check("column_sums", jacobian.sum(axis=0))
        dl_dp = np.where(np.arange(3) == label[0], -1 / p, 0.0)
        page.check("dL_dp", dl_dp)
        criterion = nn.CrossEntropyLoss()
        criterion(z, label)
        page.check("dz", jacobian.T @ dl_dp)
        np.testing.assert_allclose(jacobian.T @ dl_dp, criterion.backward()[0], atol=1e-12)
