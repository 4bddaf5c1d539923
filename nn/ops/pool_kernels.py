"""numba kernels for (ReLU +) max pooling over a map kept in "wide rows", forward and backward.

A channel's map lives in a flat array, element (y, x) at ``y * pitch + x``: a convolution's
wide-row scratch (``conv_kernels``), whose rows are ``pitch`` numbers apart. Pooling reads its
windows from there:

    out[py, px] = max_{i < pkh, j < pkw} v[(py*psh + i) * pitch + px*psw + j]

with ``v = relu(map)`` when a ReLU sits between the convolution and the pool. A 1 x 1 window with
stride 1 is no pooling at all: the same kernels then only apply the ReLU (or copy the map out).

``argmax`` holds the in-window index ``i * pkw + j`` of the first maximum in row-major order, as
``MaxPool2d`` computes it. Backward sends each window's gradient to that winner, and through the
ReLU only if the winner was positive; since ``max(relu(v)) = relu(max(v))``, that is exactly when
the pooled output is positive, so no ReLU mask is ever stored.
"""

import numba


@numba.njit(cache=True, inline="always")
def pool_channel(conv, pitch, out, argmax, pkh, pkw, psh, psw, relu, keep_argmax):
    """One channel: out, argmax (PH, PW) <- (ReLU then) max pooling of the map in ``conv`` (see the module docstring).

    ReLU maps NaN to 0 (as ``np.where(x > 0, x, 0)``) and a window of zeros is won by its first
    element; without ReLU the first NaN wins, as ``np.argmax`` chooses. Winners are chosen with
    selects, not branches: on real data they are unpredictable, and mispredicted branches would
    cost more than the convolution itself.
    """
    zero = out.dtype.type(0)
    ph, pw = out.shape
    for py in range(ph):
        if relu and pkh == 2 and pkw == 2:  # the common case, spelled out so the compiler vectorizes over px
            row0 = conv[py * psh * pitch:]
            row1 = conv[(py * psh + 1) * pitch:]
            for px in range(pw):
                left = px * psw
                best, index = zero, 0
                value = row0[left]
                index = 0 if value > best else index
                best = value if value > best else best
                value = row0[left + 1]
                index = 1 if value > best else index
                best = value if value > best else best
                value = row1[left]
                index = 2 if value > best else index
                best = value if value > best else best
                value = row1[left + 1]
                index = 3 if value > best else index
                best = value if value > best else best
                out[py, px] = best
                if keep_argmax:
                    argmax[py, px] = index
        elif pkh == 1 and pkw == 1 and psw == 1:  # no pooling: only the ReLU (or a copy), contiguous
            base = py * psh * pitch
            for px in range(pw):
                value = conv[base + px]
                out[py, px] = value if (value > zero or not relu) else zero
        else:
            for px in range(pw):
                first = conv[py * psh * pitch + px * psw]
                best = zero if relu else first
                index = 0
                for i in range(pkh):
                    row = conv[(py * psh + i) * pitch + px * psw:]
                    for j in range(pkw):
                        value = row[j]
                        # Without ReLU, NaN wins once and stays (np.argmax); with ReLU it counts as 0.
                        better = value > best or (not relu and value != value and best == best)
                        index = i * pkw + j if better else index
                        best = value if better else best
                out[py, px] = best
                if keep_argmax:
                    argmax[py, px] = index


@numba.njit(cache=True, inline="always")
def scatter_channel(target, dout, out, argmax, pitch, tap_offset, psh, psw, relu, pooled):
    """One channel: ``target`` (zeroed by the caller) <- each window's gradient at its winner.

    The winner of window (py, px) sits at ``py*psh*pitch + px*psw + tap_offset[argmax]`` with
    ``tap_offset[i * pkw + j] = i * pitch + j`` (no division per window). Through a ReLU the
    gradient passes only where the pooled output is positive (see the module docstring); that
    mask is a select, not a branch, because real activations' signs are unpredictable.
    ``pooled`` False means 1 x 1 windows: then ``argmax`` is not read (it may be empty).
    """
    zero = dout.dtype.type(0)
    ph, pw = dout.shape
    for py in range(ph):
        for px in range(pw):
            g = dout[py, px]
            if relu:
                g = g if out[py, px] > 0 else zero
            position = py * psh * pitch + px * psw
            if pooled:
                position += tap_offset[argmax[py, px]]
            # += because overlapping windows (stride < kernel) may share their winner.
            target[position] += g
