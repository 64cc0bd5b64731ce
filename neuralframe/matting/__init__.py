"""Human video matting: the alpha of each frame, and the person composited over a new background.

Submodules load torch on use; importing this package stays cheap:

    from neuralframe.matting.matters import MatteSettings, make_matter   # how the alpha is computed
    from neuralframe.matting.backgrounds import parse_background       # "#00b140", an image, a video, "blur:24"
    from neuralframe.matting.stages import MatteStage, matte_stages    # the pipeline stages
    from neuralframe.matting.segmenter import load_segmenter           # the bundled segmenter (.tflite -> torch)
    from neuralframe.matting.rvm import MattingNetwork                 # official rvm_mobilenetv3.pth loads
    from neuralframe.matting.rvm_matter import RVMMatter               # RVM with its recurrent state

`refine` (temporal stabiliser and fast guided filter; `refine_ref`/`refine_cpu` kernels), `tflite` (the
.tflite reader), `rvm_encoder` (RVM's MobileNetV3 encoder), `media` (bundled photos and clips). The networks run on engines handed in (`engines`:
torch by default); the apps build onnxruntime and TensorRT ones (`neuralframe.export.matting`). The
products that use this domain: `neuralframe stream --effect matte|replace:...|blur` (`apps/effects.py`)
and `neuralframe matte` (`apps/matte.py`).
"""
