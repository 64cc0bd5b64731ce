"""The worlds the bundled models cover: the parts of the procedural generator's space they are trained and
evaluated on. Every training stage, evaluation and export that draws tiny-shapes data takes its world from
here.

    >>> from neuralframe.generate.data import ShapesGenerator
    >>> from neuralframe.generate.data.worlds import VIDEO_WORLD
    >>> ShapesGenerator(VIDEO_WORLD).video(seed=0).pixels.shape
    (12, 64, 64, 3)
"""

from __future__ import annotations

from neuralframe.generate.data.generator import ShapesConfig

# The world of the bundled tiny-shapes image model (assets/models/tiny-shapes): every shape, colour and
# position, large, solid, over plain and gradient backgrounds. The generator draws more (small and medium
# shapes, textures, noise and photo backgrounds); at 64x64 pixels and 8x8x4 latents those need an autoencoder
# and a UNet larger than a 2-core CPU trains in a session. Measured with the scorer when this world was chosen
# (earlier runs, not the bundled model): the first, full-world autoencoder reconstructed only 28% of held-out
# images well enough to name their shape and colour; the medium-and-large teacher (5,757 steps) drew 76% of
# its large shapes right but 45% of its medium ones (squares came out as discs, the autoencoder itself keeps
# 84% of medium shapes against 91% of large ones). The autoencoder still sees photographs
# (`batches.PhotoCrops`); every stage and the evaluation draw their shapes from this world.
WORLD = ShapesConfig(size=64, sizes=("large",), textures=("solid",), backgrounds=("plain", "gradient"))

# The world of the bundled video model (assets/models/tiny-shapes-video): the image model's world with the
# motions that keep a shape in view however long a clip runs (rotate, bounce) or move it by one grid step
# over a clip (left, right, up, down); "grow" is left out (it has no steady state).
VIDEO_WORLD = ShapesConfig(size=64, frames=12, sizes=("large",), textures=("solid",),
                           backgrounds=("plain", "gradient"),
                           motions=("left", "right", "up", "down", "rotate", "bounce"))
