"""Random augmentation of digit images: the geometry of a digit, and the pen and scan that made it.

A handwritten digit stays the same digit when it is moved by a pixel or two, tilted a little,
written slightly larger or smaller, slanted or narrower, or drawn with a wider or softer pen.
Showing the network such variants of the training images (a new random variant of each image
every epoch) makes it rely less on exact pixels, and on the thin, sharp strokes of MNIST's pens.

``RandomAffine``: each image n gets its own transform about the image centre c::

    output position = c + scale_n * R(angle_n) * S(shear_n, aspect_n) (input position - c) + shift_n

with ``S = [[aspect, -shear], [0, 1]]`` acting on (x, y), rows growing downwards: the width is
multiplied by ``aspect`` and each row moves right by ``shear`` times its height above the centre
(a forward slant, for shear > 0). ``warp.warp`` applies the inverse with bilinear interpolation
(see ``affine_maps``). With the numba kernel, augmenting the 55,000 training images at once
takes about 0.2 s on two cores, a tenth of a training epoch.

``RandomPen``: each image's strokes widened or thinned and, for some images, softened; see
``strokes`` for the formulas (grey dilation/erosion, Gaussian blur).

``Compose`` chains augmentations with one generator. Each transformation is also a plain
function to call on a few digits and look at: ``shear``, ``stretch_width``, ``rotate_scale_shift``
here, ``strokes.stroke_width`` and ``strokes.soften`` (``python -m data.augment_gallery`` draws them).
"""

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .strokes import soften, stroke_width
from .warp import warp


def affine_maps(angles_deg, scales, shifts, shape, shears=None, aspects=None):
    """The inverse maps (N, 2, 3) that ``warp.warp`` needs, one per image.

    Args:
        angles_deg: (N,) rotation angles in degrees, clockwise as displayed (rows grow downwards).
        scales: (N,) zoom factors, > 0 (above 1 enlarges the digit).
        shifts: (N, 2) translations in pixels, as (dy, dx): +dy moves down, +dx moves right.
        shape: (H, W) of the images; the centre is ((H - 1) / 2, (W - 1) / 2).
        shears: optional (N,) horizontal shears: a row ``d`` pixels above the centre moves
            ``shear * d`` pixels right (shear > 0 slants a digit forward, as italics).
        aspects: optional (N,) width factors, > 0 (below 1 makes a digit narrower).

    Returns:
        float64 (N, 2, 3) ``m`` with ``source = m @ (x, y, 1)`` for each output pixel (x, y).

    Inverting ``out = c + s R(a) (in - c) + t`` gives ``in = c + (1/s) R(-a) (out - c - t)``, i.e.
    with ``dx = x - cx - tx`` and ``dy = y - cy - ty``::

        source_x = cx + ( cos(a) dx + sin(a) dy) / s
        source_y = cy + (-sin(a) dx + cos(a) dy) / s

    With a = 0, s = 1 the coefficients come out as exactly 1, 0 and -t (the centre cancels
    exactly), so identity maps and whole-pixel shifts hit pixel centres exactly.

    With shears or aspects, the forward map's matrix is ``s R(a) S`` with ``S = [[aspect, -shear],
    [0, 1]]`` on (x, y) (rows grow downwards, so "above" is -y), and its inverse is
    ``S^-1 R(-a) / s`` with ``S^-1 = [[1/aspect, shear/aspect], [0, 1]]``.
    """
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    scales = np.asarray(scales, dtype=np.float64)
    shifts = np.asarray(shifts, dtype=np.float64)
    n = angles.shape[0] if angles.ndim == 1 else -1
    if angles.ndim != 1 or scales.shape != (n,) or shifts.shape != (n, 2):
        raise ValueError(f"affine_maps: expected angles (N,), scales (N,) and shifts (N, 2), got "
                         f"{angles.shape}, {scales.shape} and {shifts.shape}")
    if not (scales > 0).all():
        raise ValueError(f"affine_maps: scales must be positive, got minimum {scales.min()}")
    cy, cx = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    cos, sin = np.cos(angles) / scales, np.sin(angles) / scales
    # (cx + tx, cy + ty): where the centre of the input lands in the output.
    ox, oy = cx + shifts[:, 1], cy + shifts[:, 0]
    maps = np.empty((n, 2, 3))
    if shears is None and aspects is None:
        maps[:, 0, 0], maps[:, 0, 1], maps[:, 0, 2] = cos, sin, cx - (cos * ox + sin * oy)
        maps[:, 1, 0], maps[:, 1, 1], maps[:, 1, 2] = -sin, cos, cy - (-sin * ox + cos * oy)
        return maps
    shears = np.zeros(n) if shears is None else np.asarray(shears, dtype=np.float64)
    aspects = np.ones(n) if aspects is None else np.asarray(aspects, dtype=np.float64)
    if shears.shape != (n,) or aspects.shape != (n,):
        raise ValueError(f"affine_maps: expected shears and aspects ({n},), got {shears.shape} and {aspects.shape}")
    if not (aspects > 0).all():
        raise ValueError(f"affine_maps: aspects must be positive, got minimum {aspects.min()}")
    # (S^-1 R(-a) / s): the rotation's rows, then the shear's row operation and the width's division.
    a00, a01 = (cos + shears * -sin) / aspects, (sin + shears * cos) / aspects
    a10, a11 = -sin, cos
    maps[:, 0, 0], maps[:, 0, 1], maps[:, 0, 2] = a00, a01, cx - (a00 * ox + a01 * oy)
    maps[:, 1, 0], maps[:, 1, 1], maps[:, 1, 2] = a10, a11, cy - (a10 * ox + a11 * oy)
    return maps


def apply_affine(images, angles_deg, scales, shifts, fill=0.0, backend=None, launch_lock=None,
                 shears=None, aspects=None):
    """Transform each image of ``images`` (N, H, W) or (N, C, H, W) by its own parameters.

    See ``affine_maps`` for the parameters; all channels of an image get the same transform.
    ``backend`` and ``launch_lock`` are ``warp.warp``'s. Returns an array of the same shape and
    dtype (uint8, float32 or float64).
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"apply_affine: expected images (N, H, W) or (N, C, H, W), got shape {images.shape}")
    maps = affine_maps(angles_deg, scales, shifts, images.shape[-2:], shears, aspects)
    if maps.shape[0] != images.shape[0]:
        raise ValueError(f"apply_affine: {images.shape[0]} images but {maps.shape[0]} sets of parameters")
    if images.ndim == 3:
        return warp(images, maps, fill, backend, launch_lock)
    n, channels, h, w = images.shape
    flat = warp(images.reshape(n * channels, h, w), np.repeat(maps, channels, axis=0), fill, backend, launch_lock)
    return flat.reshape(images.shape)


@dataclass(frozen=True)
class RandomAffine:
    """A random shift, rotation and scaling per image; callable as ``augment(images, rng)``.

    Attributes:
        max_shift: shifts are whole pixels drawn uniformly from -max_shift..max_shift per axis
            (whole pixels keep strokes sharp when there is no rotation or scaling).
        max_rotation: angles are drawn uniformly from [-max_rotation, max_rotation] degrees.
        scale_range: scales are drawn uniformly from [low, high].
        max_shear: shears are drawn uniformly from [-max_shear, max_shear] (0: none drawn).
        aspect_range: width factors are drawn log-uniformly from [low, high] ((1, 1): none drawn),
            so that a range like (1/1.3, 1.3) narrows as often as it widens.
        fill: the value of pixels that come from outside the image (0 = MNIST's background; for
            already-normalized images use ``-mean / std``).
        backend: "numpy", "numba" or None for numba when it is importable (``warp.DEFAULT_BACKEND``);
            a training script passes its framework's backend.
        launch_lock: a lock held while the numba kernel runs on several threads (None: the warp
            module's own); pass the lock of other parallel kernels that run in other threads.
    """

    max_shift: int = 2
    max_rotation: float = 10.0
    scale_range: tuple = (0.9, 1.1)
    max_shear: float = 0.0
    aspect_range: tuple = (1.0, 1.0)
    fill: float = 0.0
    backend: Optional[str] = None
    launch_lock: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.max_shift, (int, np.integer)) or isinstance(self.max_shift, bool) or self.max_shift < 0:
            raise ValueError(f"RandomAffine: max_shift must be a non-negative int, got {self.max_shift!r}")
        if not 0 <= self.max_rotation <= 180:
            raise ValueError(f"RandomAffine: max_rotation must be in [0, 180] degrees, got {self.max_rotation!r}")
        _check_positive_range("RandomAffine", "scale_range", self.scale_range)
        if not 0 <= self.max_shear <= 1:
            raise ValueError(f"RandomAffine: max_shear must be in [0, 1], got {self.max_shear!r}")
        _check_positive_range("RandomAffine", "aspect_range", self.aspect_range)

    @property
    def slants(self):
        """Whether shears or width changes are drawn (without them, the draws are the plain affine's)."""
        return self.max_shear > 0 or tuple(self.aspect_range) != (1.0, 1.0)

    def sample(self, rng, n):
        """Draw the parameters of ``n`` transforms: a dict of angles_deg (n,), scales (n,), shifts (n, 2),
        and, if ``slants``, shears (n,) and aspects (n,): ``apply_affine``'s keyword arguments."""
        params = {"angles_deg": rng.uniform(-self.max_rotation, self.max_rotation, size=n),
                  "scales": rng.uniform(self.scale_range[0], self.scale_range[1], size=n),
                  "shifts": rng.integers(-self.max_shift, self.max_shift, size=(n, 2), endpoint=True)}
        if self.slants:
            params["shears"] = rng.uniform(-self.max_shear, self.max_shear, size=n)
            low, high = np.log(self.aspect_range[0]), np.log(self.aspect_range[1])
            params["aspects"] = np.exp(rng.uniform(low, high, size=n))
        return params

    def __call__(self, images, rng):
        """Augment a batch (N, H, W) or (N, C, H, W) with parameters drawn from ``rng`` (a Generator)."""
        _check_rng("RandomAffine", rng)
        params = self.sample(rng, np.shape(images)[0])
        return apply_affine(images, fill=self.fill, backend=self.backend, launch_lock=self.launch_lock, **params)


def _check_positive_range(owner, name, value):
    low, high = value
    if not 0 < low <= high:
        raise ValueError(f"{owner}: {name} must be (low, high) with 0 < low <= high, got {value!r}")


def _check_rng(name, rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name}: rng must be a numpy.random.Generator, got {type(rng).__name__}")


def _no_motion(n):
    return {"angles_deg": np.zeros(n), "scales": np.ones(n), "shifts": np.zeros((n, 2))}


def shear(images, shears, fill=0.0, backend=None):
    """Slant each image (N, H, W) by its own shear (N,): rows above the centre move right by shear x height."""
    n = np.shape(images)[0]
    return apply_affine(images, fill=fill, backend=backend, shears=shears, **_no_motion(n))


def stretch_width(images, aspects, fill=0.0, backend=None):
    """Multiply each image's width about its centre by its own factor (N,) > 0 (the height stays)."""
    n = np.shape(images)[0]
    return apply_affine(images, fill=fill, backend=backend, aspects=aspects, **_no_motion(n))


def rotate_scale_shift(images, angles_deg, scales, shifts, fill=0.0, backend=None):
    """``RandomAffine``'s default transformation with given parameters (see ``affine_maps``)."""
    return apply_affine(images, angles_deg, scales, shifts, fill, backend)


@dataclass(frozen=True)
class RandomPen:
    """Random stroke width and softness per uint8 image (N, H, W); callable as ``augment(images, rng)``.

    Attributes:
        width_range: each image's ``strokes.stroke_width`` amount is drawn uniformly from
            [low, high] in [-1, 1] (above 0 widens, below 0 thins).
        soften_probability: the fraction of images also blurred by ``strokes.soften``.
        sigma_range: their blur's standard deviation, drawn uniformly from [low, high] pixels.
        backend, launch_lock: as ``RandomAffine``'s.

    The parameters are drawn for every image (so the draws do not depend on which images are
    softened); only the chosen images go through the blur kernel.
    """

    width_range: tuple = (-0.3, 1.0)
    soften_probability: float = 0.3
    sigma_range: tuple = (0.5, 1.0)
    backend: Optional[str] = None
    launch_lock: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        low, high = self.width_range
        if not -1 <= low <= high <= 1:
            raise ValueError(f"RandomPen: width_range must be (low, high) with -1 <= low <= high <= 1, "
                             f"got {self.width_range!r}")
        if not 0 <= self.soften_probability <= 1:
            raise ValueError(f"RandomPen: soften_probability must be in [0, 1], got {self.soften_probability!r}")
        _check_positive_range("RandomPen", "sigma_range", self.sigma_range)

    def sample(self, rng, n):
        """Draw ``n`` images' parameters: amounts (n,), softened (n,) bool, sigmas (n,)."""
        amounts = rng.uniform(self.width_range[0], self.width_range[1], size=n)
        softened = rng.random(n) < self.soften_probability
        sigmas = rng.uniform(self.sigma_range[0], self.sigma_range[1], size=n)
        return amounts, softened, sigmas

    def __call__(self, images, rng):
        """Augment uint8 images (N, H, W) with parameters drawn from ``rng`` (a Generator)."""
        _check_rng("RandomPen", rng)
        amounts, softened, sigmas = self.sample(rng, np.shape(images)[0])
        out = stroke_width(images, amounts, self.backend, self.launch_lock)
        if softened.any():
            out[softened] = soften(out[softened], sigmas[softened], self.backend, self.launch_lock)
        return out


def handwriting_augment(backend=None, launch_lock=None):
    """Augmentation for pens wider than MNIST's: ``RandomAffine()``'s shifts, rotations and scalings,
    then strokes widened by up to 0.6 of a grey dilation (``RandomPen(width_range=(0, 0.6),
    soften_probability=0)``).

    The mildest stroke augmentation tried (docs/handwriting.md): over 3 seeds it read the widest
    pens about a point better than the plain affine and MNIST's test set about a quarter point
    worse. Thinning, full dilation and blur cost MNIST more; shears taught the model to read a 1
    with a flag as a 7.
    """
    return Compose((RandomAffine(backend=backend, launch_lock=launch_lock),
                    RandomPen(width_range=(0.0, 0.6), soften_probability=0.0, backend=backend,
                              launch_lock=launch_lock)))


@dataclass(frozen=True)
class Compose:
    """Several augmentations in order, all drawing from the one generator: ``Compose((a, b))(images, rng)``."""

    steps: tuple

    def __call__(self, images, rng):
        _check_rng("Compose", rng)
        for step in self.steps:
            images = step(images, rng)
        return images
