"""The pyglet desktop viewer (`neuralframe view`). Importing this package opens no window and does not
import pyglet; `ViewerApp.run()` does."""
