"""How a pen and a scanner change a digit: stroke width (grey dilation or erosion) and softness (blur).

Real handwriting differs from MNIST less in geometry than in the strokes themselves: a felt pen
draws wider lines than MNIST's (about 3 pixels against 2 once both are scaled to the 20x20 box),
and a low-resolution scan or photo softens their edges. Two operations model that, on uint8
images (N, H, W), white ink on black, each image with its own strength:

``stroke_width(images, amounts)``, grey-level morphology blended by ``a = amounts[n]`` in [-1, 1]::

    a > 0: out = p + a (max over the 3x3 square around the pixel - p)     (dilation: wider strokes)
    a < 0: out = p + |a| (min over the 3x3 cross (+) around the pixel - p)  (erosion: thinner strokes)

The window is clipped at the image border. A full dilation widens a stroke by a pixel on each
side; a fraction of it adds a grey rim, the soft wide stroke of a felt pen. Erosion uses the
cross, the smaller window, because MNIST's 2-pixel strokes vanish under a full 3x3 square.

``soften(images, sigmas)``, a Gaussian blur of standard deviation ``sigmas[n]`` pixels, then the
strongest pixel stretched back to 255 (the upload preprocessing stretches every digit so)::

    w_k = exp(-k^2 / (2 sigma^2)) / sum_j exp(-j^2 / (2 sigma^2)),  k, j in -BLUR_RADIUS..BLUR_RADIUS
    v = vertical pass of w over (horizontal pass of w over p), pixels outside the image 0
    out = v * 255 / max(v)

Both round half up to uint8. ``*_numpy`` are the readable references; the numba kernels compute
the same operations in the same order, pixel by pixel (bit-identical results), one image per
thread for large jobs. ``data`` does not depend on ``nn``: callers pass a backend name.
"""

import numpy as np

from .warp import BACKENDS, DEFAULT_BACKEND, NUMBA_AVAILABLE, PARALLEL_MIN_IMAGES, _parallel_launch

if NUMBA_AVAILABLE:
    import numba

BLUR_RADIUS = 3  # taps -3..3: the kernel is cut at 2 sigma for the softest blur used (sigma 1.5)


def _check(name, images, strengths):
    if not isinstance(images, np.ndarray) or images.ndim != 3 or images.dtype != np.uint8:
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise TypeError(f"{name}: expected uint8 images of shape (N, H, W), got {got}")
    strengths = np.asarray(strengths, dtype=np.float64)
    if strengths.shape != (images.shape[0],):
        raise ValueError(f"{name}: expected one strength per image, shape ({images.shape[0]},), got {strengths.shape}")
    if not np.isfinite(strengths).all():
        raise ValueError(f"{name}: strengths must be finite")
    return np.ascontiguousarray(images), np.ascontiguousarray(strengths)


def _round_to_uint8(values):
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def _backend(name, backend):
    backend = DEFAULT_BACKEND if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"{name}: backend must be 'numpy' or 'numba', got {backend!r}")
    return backend == "numba" and NUMBA_AVAILABLE


def gaussian_weights(sigmas):
    """(N, 2 * BLUR_RADIUS + 1) normalized Gaussian taps, one row per sigma (> 0)."""
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if not (sigmas > 0).all():
        raise ValueError(f"soften: sigmas must be positive, got minimum {sigmas.min()}")
    k = np.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=np.float64)
    w = np.exp(-(k ** 2) / (2.0 * sigmas[:, np.newaxis] ** 2))
    return w / w.sum(axis=1, keepdims=True)


# -- NumPy references ---------------------------------------------------------------------------

def stroke_width_numpy(images, amounts):
    """See the module docstring: dilation (amount > 0) or erosion (< 0) blended by |amount|."""
    images, amounts = _check("stroke_width", images, amounts)
    n, h, w = images.shape
    # Padding with 0 for the max and 255 for the min is the same as clipping the window.
    low = np.pad(images, ((0, 0), (1, 1), (1, 1)), constant_values=0)
    high = np.pad(images, ((0, 0), (1, 1), (1, 1)), constant_values=255)
    square_max = np.max([low[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    cross_min = np.min([high[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                        for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))], axis=0)
    a = amounts[:, np.newaxis, np.newaxis]
    target = np.where(a > 0, square_max, cross_min).astype(np.float64)
    p = images.astype(np.float64)
    return _round_to_uint8(p + np.abs(a) * (target - p))


def soften_numpy(images, sigmas):
    """See the module docstring: Gaussian blur of ``sigmas[n]`` pixels, peak stretched to 255."""
    images, sigmas = _check("soften", images, sigmas)
    weights = gaussian_weights(sigmas)
    n, h, w = images.shape
    r = BLUR_RADIUS
    padded = np.pad(images.astype(np.float64), ((0, 0), (r, r), (r, r)))
    rows = np.zeros((n, h + 2 * r, w))
    for i, k in enumerate(range(-r, r + 1)):
        rows += weights[:, i, np.newaxis, np.newaxis] * padded[:, :, r + k:r + k + w]
    blurred = np.zeros((n, h, w))
    for i, k in enumerate(range(-r, r + 1)):
        blurred += weights[:, i, np.newaxis, np.newaxis] * rows[:, r + k:r + k + h, :]
    peak = blurred.max(axis=(1, 2), keepdims=True)
    stretched = np.where(peak > 0, blurred * 255.0 / np.where(peak > 0, peak, 1.0), 0.0)
    return _round_to_uint8(stretched)


# -- numba kernels ------------------------------------------------------------------------------

if NUMBA_AVAILABLE:
    @numba.njit(cache=True, inline="always")
    def _stroke_image(image, amount, out):
        h, w = image.shape
        for y in range(h):
            for x in range(w):
                p = np.float64(image[y, x])
                if amount > 0:
                    m = 0.0
                    for yy in range(max(y - 1, 0), min(y + 2, h)):
                        for xx in range(max(x - 1, 0), min(x + 2, w)):
                            m = max(m, np.float64(image[yy, xx]))
                    t = amount
                else:
                    m = p
                    if y > 0:
                        m = min(m, np.float64(image[y - 1, x]))
                    if y + 1 < h:
                        m = min(m, np.float64(image[y + 1, x]))
                    if x > 0:
                        m = min(m, np.float64(image[y, x - 1]))
                    if x + 1 < w:
                        m = min(m, np.float64(image[y, x + 1]))
                    t = -amount
                value = p + t * (m - p)
                out[y, x] = min(max(np.floor(value + 0.5), 0.0), 255.0)

    @numba.njit(cache=True, inline="always")
    def _soften_image(image, weights, rows, blurred, out):
        h, w = image.shape
        r = (weights.shape[0] - 1) // 2
        # The same sums in the same order as soften_numpy, less the taps that fall outside the
        # image: those add weight * 0.0 = +0.0 there, which leaves a sum of positive terms as it is.
        for y in range(h):
            for x in range(w):
                acc = 0.0
                for i in range(max(0, r - x), min(2 * r, w - 1 - x + r) + 1):
                    acc += weights[i] * np.float64(image[y, x + i - r])
                rows[y, x] = acc
        peak = 0.0
        for y in range(h):
            for x in range(w):
                acc = 0.0
                for i in range(max(0, r - y), min(2 * r, h - 1 - y + r) + 1):
                    acc += weights[i] * rows[y + i - r, x]
                blurred[y, x] = acc
                peak = max(peak, acc)
        for y in range(h):
            for x in range(w):
                value = blurred[y, x] * 255.0 / peak if peak > 0 else 0.0
                out[y, x] = min(max(np.floor(value + 0.5), 0.0), 255.0)

    @numba.njit(cache=True)
    def _stroke_serial(images, amounts, out):
        for i in range(images.shape[0]):
            _stroke_image(images[i], amounts[i], out[i])

    @numba.njit(cache=True, parallel=True)
    def _stroke_parallel(images, amounts, out):
        for i in numba.prange(images.shape[0]):
            _stroke_image(images[i], amounts[i], out[i])

    @numba.njit(cache=True)
    def _soften_serial(images, weights, out):
        h, w = images.shape[1], images.shape[2]
        rows, blurred = np.empty((h, w)), np.empty((h, w))
        for i in range(images.shape[0]):
            _soften_image(images[i], weights[i], rows, blurred, out[i])

    @numba.njit(cache=True, parallel=True)
    def _soften_parallel(images, weights, out):
        h, w = images.shape[1], images.shape[2]
        for i in numba.prange(images.shape[0]):
            rows, blurred = np.empty((h, w)), np.empty((h, w))
            _soften_image(images[i], weights[i], rows, blurred, out[i])


def _launch(serial, parallel, images, per_image, launch_lock):
    out = np.empty_like(images)
    if images.shape[0] < PARALLEL_MIN_IMAGES or numba.get_num_threads() < 2:
        serial(images, per_image, out)
    else:
        with launch_lock or _parallel_launch:
            parallel(images, per_image, out)
    return out


def stroke_width(images, amounts, backend=None, launch_lock=None):
    """Widen (amount > 0) or thin (amount < 0) the strokes of each uint8 image (N, H, W).

    ``amounts`` (N,) in [-1, 1]; see the module docstring for the formula. ``backend`` is "numpy",
    "numba" or None (numba when importable); ``launch_lock`` as in ``warp.warp_numba``.
    """
    images, amounts = _check("stroke_width", images, amounts)
    if np.abs(amounts).max(initial=0.0) > 1:
        raise ValueError(f"stroke_width: amounts must be in [-1, 1], got {amounts.min():g} to {amounts.max():g}")
    if _backend("stroke_width", backend):
        return _launch(_stroke_serial, _stroke_parallel, images, amounts, launch_lock)
    return stroke_width_numpy(images, amounts)


def soften(images, sigmas, backend=None, launch_lock=None):
    """Blur each uint8 image (N, H, W) by its own Gaussian ``sigmas`` (N,) > 0, peak back to 255.

    See the module docstring for the formula; ``backend`` and ``launch_lock`` as ``stroke_width``'s.
    """
    images, sigmas = _check("soften", images, sigmas)
    if _backend("soften", backend):
        return _launch(_soften_serial, _soften_parallel, images, gaussian_weights(sigmas), launch_lock)
    return soften_numpy(images, sigmas)
