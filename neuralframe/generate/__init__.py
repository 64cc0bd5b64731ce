"""Generative and neural media: matting (`neuralframe.matting`), procedural captioned data
(`neuralframe.generate.data`) and the bundled CLIP tokenizer (`neuralframe.generate.tokenizer`); imports
nothing heavy."""
