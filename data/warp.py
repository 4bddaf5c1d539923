"""Resampling images through an affine map, with bilinear interpolation.

Each output pixel asks where it comes from: the *inverse* map of image n takes output pixel
(y, x) to a source position::

    source_x = m[n, 0, 0] * x + m[n, 0, 1] * y + m[n, 0, 2]
    source_y = m[n, 1, 0] * x + m[n, 1, 1] * y + m[n, 1, 2]

and the output is the bilinear blend of the four source pixels around that position, weighted
by closeness. Source pixels outside the image read as ``fill``. Mapping backwards like this
gives every output pixel exactly one value (a forward map would leave holes).

Properties the tests rely on: the blend is a convex combination, so outputs stay within
[min(image, fill), max(image, fill)]; an identity map (or an integer shift) lands on whole
pixels with weights exactly 0 and 1, so it reproduces pixels bit for bit. uint8 images are
blended in floating point and rounded half up; float images keep their dtype.

``warp_numpy`` is the readable reference; ``warp_numba`` computes the same thing pixel by pixel
in a compiled loop. ``warp`` picks the one its caller names, numba by default when it is
importable. (``data`` does not depend on ``nn``: a training script passes ``nn``'s backend in.)
"""

import threading

import numpy as np

try:
    import numba
    NUMBA_AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only on machines without numba
    NUMBA_AVAILABLE = False

BACKENDS = ("numpy", "numba")
DEFAULT_BACKEND = "numba" if NUMBA_AVAILABLE else "numpy"


def _check(images, maps):
    if not isinstance(images, np.ndarray) or images.ndim != 3:
        raise ValueError(f"warp: expected images of shape (N, H, W), got {getattr(images, 'shape', type(images))}")
    if images.dtype not in (np.uint8, np.float32, np.float64):
        raise TypeError(f"warp: expected uint8, float32 or float64 images, got {images.dtype}")
    maps = np.asarray(maps, dtype=np.float64)
    if maps.shape != (images.shape[0], 2, 3):
        raise ValueError(f"warp: expected maps of shape ({images.shape[0]}, 2, 3), got {maps.shape}")
    if not np.isfinite(maps).all():
        raise ValueError("warp: maps must be finite")
    return np.ascontiguousarray(maps)


def warp_numpy(images, maps, fill=0.0):
    """Resample ``images`` (N, H, W) through the inverse maps ``maps`` (N, 2, 3); same shape and dtype."""
    maps = _check(images, maps)
    n, h, w = images.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    m = maps[:, :, :, np.newaxis, np.newaxis]  # broadcast each image's coefficients over (H, W)
    source_x = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]
    source_y = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]
    x0 = np.floor(source_x)
    y0 = np.floor(source_y)
    wx = source_x - x0  # weight of the right-hand column, in [0, 1)
    wy = source_y - y0  # weight of the lower row
    x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
    image_index = np.arange(n)[:, np.newaxis, np.newaxis]

    def pixel(yy, xx):
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        values = images[image_index, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
        return np.where(inside, values.astype(np.float64), np.float64(fill))

    top = (1.0 - wx) * pixel(y0, x0) + wx * pixel(y0, x0 + 1)
    bottom = (1.0 - wx) * pixel(y0 + 1, x0) + wx * pixel(y0 + 1, x0 + 1)
    blended = (1.0 - wy) * top + wy * bottom
    if images.dtype == np.uint8:
        return np.clip(np.floor(blended + 0.5), 0, 255).astype(np.uint8)
    return blended.astype(images.dtype)


if NUMBA_AVAILABLE:
    @numba.njit(cache=True, inline="always")
    def _pixel_or_fill(image, yy, xx, fill):
        h, w = image.shape
        if 0 <= yy < h and 0 <= xx < w:
            return np.float64(image[yy, xx])
        return fill

    @numba.njit(cache=True, inline="always")
    def _warp_image(image, m, fill, round_to_uint8, out):
        h, w = image.shape
        for y in range(h):
            for x in range(w):
                # Same operations, in the same order, as warp_numpy: bit-identical results.
                source_x = m[0, 0] * x + m[0, 1] * y + m[0, 2]
                source_y = m[1, 0] * x + m[1, 1] * y + m[1, 2]
                fx = np.floor(source_x)
                fy = np.floor(source_y)
                wx = source_x - fx
                wy = source_y - fy
                x0, y0 = int(fx), int(fy)
                if 0 <= x0 and x0 + 1 < w and 0 <= y0 and y0 + 1 < h:
                    # The common case, all four neighbours inside: no per-pixel bounds tests.
                    p00, p01 = np.float64(image[y0, x0]), np.float64(image[y0, x0 + 1])
                    p10, p11 = np.float64(image[y0 + 1, x0]), np.float64(image[y0 + 1, x0 + 1])
                else:
                    p00, p01 = _pixel_or_fill(image, y0, x0, fill), _pixel_or_fill(image, y0, x0 + 1, fill)
                    p10 = _pixel_or_fill(image, y0 + 1, x0, fill)
                    p11 = _pixel_or_fill(image, y0 + 1, x0 + 1, fill)
                top = (1.0 - wx) * p00 + wx * p01
                bottom = (1.0 - wx) * p10 + wx * p11
                value = (1.0 - wy) * top + wy * bottom
                if round_to_uint8:
                    value = min(max(np.floor(value + 0.5), 0.0), 255.0)
                out[y, x] = value

    @numba.njit(cache=True)
    def _warp_serial(images, maps, fill, round_to_uint8, out):
        for i in range(images.shape[0]):
            _warp_image(images[i], maps[i], fill, round_to_uint8, out[i])

    @numba.njit(cache=True, parallel=True)
    def _warp_parallel(images, maps, fill, round_to_uint8, out):
        for i in numba.prange(images.shape[0]):
            _warp_image(images[i], maps[i], fill, round_to_uint8, out[i])


# Threads pay only for large jobs: a training batch (64 images, ~0.5 ms of work) is too small
# for their start-up, and on a busy machine waiting for them made it up to 5 times slower. A
# whole epoch of images at once (train.py augments it before shuffling) splits well over the cores.
PARALLEL_MIN_IMAGES = 2048

# Parallel launches go through a lock, so that concurrent callers never nest numba's thread pool
# (its "workqueue" threading layer aborts on that). A program that also runs other parallel
# kernels in other threads (a framework's) passes that framework's lock as ``launch_lock``.
_parallel_launch = threading.Lock()


def warp_numba(images, maps, fill=0.0, launch_lock=None):
    """Same as ``warp_numpy``, compiled; requires numba.

    Jobs of at least ``PARALLEL_MIN_IMAGES`` images use numba's threads (unless it has just one),
    holding ``launch_lock`` (by default this module's own lock) while they run.
    """
    if not NUMBA_AVAILABLE:  # pragma: no cover - only on machines without numba
        raise RuntimeError("warp_numba: numba cannot be imported")
    maps = _check(images, maps)
    out = np.empty_like(images)
    args = (np.ascontiguousarray(images), maps, float(fill), images.dtype == np.uint8, out)
    if images.shape[0] < PARALLEL_MIN_IMAGES or numba.get_num_threads() < 2:
        _warp_serial(*args)
    else:
        with launch_lock or _parallel_launch:
            _warp_parallel(*args)
    return out


def warp(images, maps, fill=0.0, backend=None, launch_lock=None):
    """Resample with ``backend`` ("numpy" or "numba"; None for ``DEFAULT_BACKEND``, numba when importable).

    ``launch_lock`` serializes the numba kernel's parallel launches, see ``warp_numba``. Asked for
    numba where it cannot be imported, the NumPy reference computes the same result.
    """
    backend = DEFAULT_BACKEND if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"warp: backend must be 'numpy' or 'numba', got {backend!r}")
    if backend == "numba" and NUMBA_AVAILABLE:
        return warp_numba(images, maps, fill, launch_lock)
    return warp_numpy(images, maps, fill)
