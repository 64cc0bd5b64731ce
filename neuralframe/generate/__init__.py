"""Generative and neural media: matting today (`neuralframe.generate.matting`); imports nothing heavy."""
