"""The products: each module wires the domains (render, generate, matting) into a frame pipeline.

`stream` (the live filter and its effect registry), `restyle`, `matte`, `render` (camera paths),
`generate` (text to video), `demo` and `info`. An app builds what its domains need (engines from
`neuralframe.export`, sources and sinks from `neuralframe.streaming`) and hands it to them; domain code
never imports an app. Importing this package imports nothing heavy.
"""
