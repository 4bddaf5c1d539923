"""Helpers of the cross-check tests: a PyTorch module's output and input gradient, and a run on one numba thread."""


def torch_output_and_input_grad(torch_module, x, dout):
    """``(y, dL/dx)`` as NumPy arrays: ``torch_module`` on the float64 array ``x``, then backward of ``dout``."""
    import torch
    x_torch = torch.from_numpy(x).requires_grad_()
    y_torch = torch_module(x_torch)
    y_torch.backward(torch.from_numpy(dout))
    return y_torch.detach().numpy(), x_torch.grad.numpy()


def on_one_thread_and_on_all(run):
    """``(run() on one numba thread, run() on all of them)``; the thread count is restored afterwards."""
    import numba
    threads = numba.get_num_threads()
    parallel = run()
    numba.set_num_threads(1)
    try:
        serial = run()
    finally:
        numba.set_num_threads(threads)
    return serial, parallel
