"""The optimizers against loop references of their rules (tests/naive.py), and their groups and state dicts."""

import ast
from pathlib import Path

import numpy as np
import pytest

import nn
from nn.optim import SGD, Adagrad, Adam, AdamW, RMSprop
from tests import naive

P0 = np.array([[1.0, -2.0, 0.5], [0.25, -0.75, 3.0]])

# Each case: the optimizer class, its options, and the loop reference run with the same options.
CASES = {
    "sgd": (SGD, {"lr": 0.1}, naive.naive_sgd),
    "sgd-momentum-dampening": (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}, naive.naive_sgd),
    "sgd-nesterov-decay": (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
                           naive.naive_sgd),
    "adam": (Adam, {"lr": 0.01}, naive.naive_adam),
    "adam-l2-amsgrad": (Adam, {"lr": 0.02, "betas": (0.8, 0.9), "weight_decay": 0.1, "amsgrad": True},
                        naive.naive_adam),
    "adamw": (AdamW, {"lr": 0.01, "weight_decay": 0.1}, lambda *a, **k: naive.naive_adam(*a, **k, decoupled=True)),
    "rmsprop": (RMSprop, {"lr": 0.01}, naive.naive_rmsprop),
    "rmsprop-centered-momentum": (RMSprop, {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True,
                                            "weight_decay": 0.01}, naive.naive_rmsprop),
    "adagrad": (Adagrad, {"lr": 0.1}, naive.naive_adagrad),
    "adagrad-decay": (Adagrad, {"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.1, "initial_accumulator_value": 0.2},
                      naive.naive_adagrad),
}


def gradients(steps, seed=0, shape=P0.shape):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(steps)]


def run(optimizer_class, options, grads, p0=P0, dtype=np.float64):
    """The parameter after each step of ``optimizer_class(**options)`` fed ``grads``."""
    p = nn.Parameter(np.asarray(p0, dtype=dtype))
    optimizer = optimizer_class([p], **options)
    history = []
    for g in grads:
        optimizer.zero_grad()
        p.grad += g.astype(dtype)
        optimizer.step()
        history.append(p.data.copy())
    return history


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", list(CASES))
def test_five_steps_match_the_loop_reference_in_float64(case, backend):
    optimizer_class, options, reference = CASES[case]
    grads = gradients(5)
    with nn.use_backend(backend):
        got = run(optimizer_class, options, grads)
    for step, (a, b) in enumerate(zip(got, reference(P0, grads, **options)), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {step}")


@pytest.mark.parametrize("case", ["sgd-nesterov-decay", "adam", "rmsprop-centered-momentum"])
def test_the_loop_comparison_can_fail(case):
    """A wrong option (here a learning rate off by 1%) must be caught by the comparison above."""
    optimizer_class, options, reference = CASES[case]
    grads = gradients(5)
    got = run(optimizer_class, options, grads)
    wrong = reference(P0, grads, **{**options, "lr": options["lr"] * 1.01})
    assert not np.allclose(got[-1], wrong[-1], rtol=1e-12, atol=1e-14)


def test_plain_sgd_first_step_by_hand():
    history = run(SGD, {"lr": 0.1}, [np.array([0.1, 0.2, -0.3])], p0=[1.0, -2.0, 0.5])
    np.testing.assert_allclose(history[0], [1.0 - 0.01, -2.0 - 0.02, 0.5 + 0.03])


def test_momentum_second_step_by_hand():
    # buf1 = g1 = 0.1; p1 = 1 - 0.01 = 0.99; buf2 = 0.9*0.1 + (-0.4) = -0.31; p2 = 0.99 + 0.031
    history = run(SGD, {"lr": 0.1, "momentum": 0.9}, [np.array([0.1]), np.array([-0.4])], p0=[1.0])
    assert history[1][0] == pytest.approx(1.021)


def test_adam_first_step_moves_every_coordinate_by_lr_whatever_the_gradient_scale():
    """At t = 1, m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps): about lr * sign(g)."""
    grad = np.array([1e-3, -5.0, 200.0])
    history = run(Adam, {"lr": 0.01}, [grad], p0=np.zeros(3))
    np.testing.assert_allclose(history[0], -0.01 * np.sign(grad), rtol=1e-5)


@pytest.mark.parametrize("momentum,weight_decay,nesterov", [(0.0, 0.0, False), (0.9, 5e-4, True), (0.9, 0.1, False)])
def test_compiled_sgd_update_equals_the_reference_bit_for_bit_in_float32(momentum, weight_decay, nesterov):
    options = {"lr": 0.05, "momentum": momentum, "weight_decay": weight_decay, "nesterov": nesterov}
    grads = gradients(3)
    runs = {}
    for backend in ("numpy", "numba"):
        with nn.use_backend(backend):
            runs[backend] = run(SGD, options, grads, dtype=np.float32)
    for a, b in zip(runs["numpy"], runs["numba"]):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_the_execution_layer_offers_the_kernel_only_where_it_gives_the_reference_bits():
    from nn.execution.optimizer import compiled_update

    p = nn.Parameter(np.zeros((3, 3), dtype=np.float32))
    sgd, dampened, adam = SGD([p], lr=0.1, momentum=0.9), SGD([p], lr=0.1, momentum=0.9, dampening=0.1), Adam([p])
    with nn.use_backend("numba"):
        assert compiled_update(sgd, p, sgd.param_groups[0], {}) is not None
        assert compiled_update(dampened, p, dampened.param_groups[0], {}) is None
        assert compiled_update(adam, p, adam.param_groups[0], {}) is None
        p.data = p.data.T  # a Fortran-order view: the kernel's flat view would be a copy
        assert compiled_update(sgd, p, sgd.param_groups[0], {}) is None
    with nn.use_backend("numpy"):
        assert compiled_update(sgd, nn.Parameter(np.zeros(2)), sgd.param_groups[0], {}) is None


def test_a_non_contiguous_parameter_is_still_updated_in_place():
    p = nn.Parameter(np.zeros((4, 4), dtype=np.float32))
    p.data = p.data.T  # a view in Fortran order: the compiled path must not update a copy
    p.grad = np.ones_like(p.data)
    with nn.use_backend("numba"):
        SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(p.data, -0.5)


def test_the_optimizer_package_holds_no_backend_branch_and_no_kernel():
    """The update rules are the NumPy reference; only nn/execution decides what runs compiled."""
    package = Path(nn.optim.__file__).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
        names |= {alias.name for node in imports for alias in node.names}
        modules = {part for node in imports for part in (getattr(node, "module", None) or "").split(".")}
        modules |= {part for node in imports if isinstance(node, ast.Import) for alias in node.names
                    for part in alias.name.split(".")}
        assert not names & {"get_backend", "use_backend", "NUMBA_AVAILABLE", "sgd_kernels", "numba"}, path.name
        assert not modules & {"ops", "numba", "backend"}, path.name
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert not {f for f in functions if "compiled" in f or "kernel" in f or "fast" in f}, path.name


def test_param_groups_take_their_own_lr_and_options_and_the_defaults_for_the_rest():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    optimizer = SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.5]
    assert [g["momentum"] for g in optimizer.param_groups] == [0.0, 0.9]
    for p in (a, b):
        p.grad[:] = 1.0
    optimizer.step()
    np.testing.assert_array_equal(a.data, 0.9)
    np.testing.assert_array_equal(b.data, 0.5)
    assert set(optimizer.state[b]) == {"momentum_buffer"} and not optimizer.state[a]
    with pytest.raises(ValueError, match="different learning rates"):
        optimizer.lr
    optimizer.lr = 0.2
    assert [g["lr"] for g in optimizer.param_groups] == [0.2, 0.2]


@pytest.mark.parametrize("groups,words", [
    ([], "empty parameter list"),
    ([np.zeros(2)], "not an nn.Parameter"),
    ([{"params": []}], "group 0 is empty"),
    ([{"lr": 0.1}], "'params' key"),
    ([{"params": [nn.Parameter(np.zeros(1))], "momentun": 0.9}], r"unknown option.*momentun"),
])
def test_bad_parameter_lists_are_rejected(groups, words):
    with pytest.raises((TypeError, ValueError), match=words):
        SGD(groups, lr=0.1)


def test_a_parameter_in_two_groups_is_rejected():
    p = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="more than once"):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


@pytest.mark.parametrize("optimizer_class,kwargs,words", [
    (SGD, {"lr": -1.0}, "lr"), (SGD, {"lr": float("nan")}, "lr"), (SGD, {"lr": "0.1"}, "lr"),
    (SGD, {"momentum": 1.0}, "momentum"), (SGD, {"momentum": -0.1}, "momentum"),
    (SGD, {"nesterov": True}, "nesterov"), (SGD, {"momentum": 0.9, "nesterov": True, "dampening": 0.1}, "nesterov"),
    (SGD, {"weight_decay": -1.0}, "weight_decay"),
    (Adam, {"betas": (0.9,)}, "pair"), (Adam, {"betas": (1.0, 0.999)}, r"betas\[0\]"),
    (Adam, {"betas": (0.9, -0.1)}, r"betas\[1\]"), (Adam, {"eps": -1e-8}, "eps"),
    (AdamW, {"weight_decay": float("inf")}, "weight_decay"),
    (RMSprop, {"alpha": 1.5}, "alpha"), (RMSprop, {"momentum": 1.0}, "momentum"),
    (Adagrad, {"lr_decay": -0.1}, "lr_decay"), (Adagrad, {"initial_accumulator_value": -1.0}, "initial_acc"),
])
def test_bad_hyperparameters_are_rejected(optimizer_class, kwargs, words):
    with pytest.raises(ValueError, match=words):
        optimizer_class([nn.Parameter(np.zeros(2))], **kwargs)


def test_a_learning_rate_of_zero_is_allowed_as_in_pytorch_but_not_a_negative_one_set_later():
    optimizer = SGD([nn.Parameter(np.zeros(2))], lr=0.0)  # a cosine schedule's last epoch reaches 0
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        optimizer.lr = -0.1


@pytest.mark.parametrize("case", list(CASES))
def test_a_state_dict_round_trip_through_a_file_continues_identically(case, tmp_path):
    optimizer_class, options, _ = CASES[case]
    grads = gradients(4, seed=3)
    straight = run(optimizer_class, options, grads)[-1]

    p = nn.Parameter(P0)
    optimizer = optimizer_class([p], **options)
    for g in grads[:2]:
        p.grad[...] = g
        optimizer.step()
    nn.save(optimizer.state_dict(), tmp_path / "optimizer.npz")
    resumed_p = nn.Parameter(p.data)
    resumed = optimizer_class([resumed_p], **{**options, "lr": 123.0})  # the state dict's lr wins
    resumed.load_state_dict(nn.load(tmp_path / "optimizer.npz")[0])
    assert resumed.param_groups[0]["lr"] == options["lr"]
    for g in grads[2:]:
        resumed_p.grad[...] = g
        resumed.step()
    np.testing.assert_array_equal(resumed_p.data, straight)


def test_the_state_dict_names_follow_pytorchs_nesting():
    p = nn.Parameter(np.ones(2))
    optimizer = Adam([p], lr=0.01, betas=(0.8, 0.9))
    p.grad[:] = 1.0
    optimizer.step()
    state = optimizer.state_dict()
    assert set(state) == {"state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq", "param_groups.0.params",
                          "param_groups.0.lr", "param_groups.0.betas", "param_groups.0.eps",
                          "param_groups.0.weight_decay", "param_groups.0.amsgrad", "param_groups.0.maximize",
                          "param_groups.0.decoupled_weight_decay"}
    assert state["state.0.step"] == 1 and state["param_groups.0.betas"].tolist() == [0.8, 0.9]
    state["state.0.exp_avg"][:] = 99.0  # a copy: the optimizer's buffer is untouched
    assert optimizer.state[p]["exp_avg"][0] != 99.0


def test_sgd_loads_the_bare_momentum_buffer_layout_of_older_checkpoints(tmp_path):
    """Checkpoints written before optimizers carried hyper-parameters hold ``momentum_buffer.<i>`` only."""
    params = [nn.Parameter(np.ones((2, 2))), nn.Parameter(np.ones(3))]
    optimizer = SGD(params, lr=0.05, momentum=0.9, nesterov=True)
    old = {"momentum_buffer.0": np.full((2, 2), 0.5), "momentum_buffer.1": np.full(3, -0.25)}
    nn.save({f"optimizer.{k}": v for k, v in old.items()}, tmp_path / "old.checkpoint.npz")
    saved, _ = nn.load(tmp_path / "old.checkpoint.npz")
    optimizer.load_state_dict({k[len("optimizer."):]: v for k, v in saved.items()})
    np.testing.assert_array_equal(optimizer.state[params[0]]["momentum_buffer"], old["momentum_buffer.0"])
    np.testing.assert_array_equal(optimizer.state[params[1]]["momentum_buffer"], old["momentum_buffer.1"])
    assert optimizer.param_groups[0]["lr"] == 0.05 and optimizer.param_groups[0]["nesterov"] is True
    assert set(optimizer.state_dict()) >= {"state.0.momentum_buffer", "param_groups.0.momentum"}
    optimizer.load_state_dict({})  # an old checkpoint of SGD without momentum holds nothing
    assert not any(optimizer.state.values())


@pytest.mark.parametrize("state,words", [
    ({"momentum_buffer.0": np.zeros(3)}, "expected shape"),
    ({"momentum_buffer.0": np.zeros(2), "step": np.zeros(1)}, "unexpected key 'momentum_buffer.0'"),
    ({"param_groups.0.lr": np.array(0.1)}, "holds 0 parameters"),
    ({"param_groups.1.lr": np.array(0.1)}, "1 parameter group"),
])
def test_a_state_dict_that_does_not_fit_is_refused_naming_what_is_wrong(state, words):
    with pytest.raises(ValueError, match=words):
        SGD([nn.Parameter(np.zeros(2))], lr=0.1, momentum=0.9).load_state_dict(state)


def test_a_state_dict_of_another_size_is_refused():
    small = SGD([nn.Parameter(np.zeros(2))], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="group 0 holds 1 parameters in the state dict, 2 here"):
        SGD([nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(2))], lr=0.1).load_state_dict(small)


def test_repr_lists_each_groups_options():
    text = repr(SGD([nn.Parameter(np.zeros(2))], lr=0.1, momentum=0.9))
    assert text.startswith("SGD (") and "Parameter Group 0" in text and "momentum: 0.9" in text
