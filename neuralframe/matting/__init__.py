"""Human video matting: the bundled segmenter (imported from .tflite into torch), refinement, effects,
the offline `matte` job, and the Robust Video Matting architecture.

Submodules load torch on use; importing this package stays cheap:

    from neuralframe.matting.effects import effect_stage   # `--effect blur:24` etc.
    from neuralframe.apps.matte import MatteJob, run  # `neuralframe matte`
    from neuralframe.matting.segmenter import load_segmenter
    from neuralframe.matting.rvm import MattingNetwork     # official rvm_mobilenetv3.pth loads
    from neuralframe.matting.rvm_matter import RVMMatter   # RVM behind the effects (`--model x.pth`)
"""
