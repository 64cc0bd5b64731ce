"""The shared backend: devices, kernel dispatch, engines and fused pre/post-processing.

Nothing domain-specific lives here. Submodules are imported explicitly
(`from neuralframe.backend import dispatch`) so that importing this package stays cheap.
"""
