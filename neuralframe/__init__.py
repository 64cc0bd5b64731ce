"""neuralframe: a real-time neural graphics and generative media runtime.

Importing the package is cheap: no torch, no window, no camera, no compiled kernel. Heavy modules
load on first use of the subpackage that needs them.
"""

from neuralframe.errors import NeuralframeError

__version__ = "0.1.0"

__all__ = ["NeuralframeError", "__version__"]
