"""The render stage drops a render that a newer camera made stale, but never two in a row."""

import pytest
import torch

from neuralframe.render import interrupt
from neuralframe.render.camera import Camera, intrinsics
from neuralframe.render.output import RenderOutput
from neuralframe.render.splat import procedural, rasterize
from neuralframe.viewer.stage import RenderStage, RequestSource, ViewRequest


def _camera(width=32, height=24):
    return Camera.look_at((0.0, 0.0, -3.0), (0.0, 0.0, 0.0), intrinsics(width, height, 30.0), width, height)


def test_stale_render_is_dropped_and_the_next_one_always_finishes():
    source = RequestSource(32, 24)
    calls = []

    def render(camera):
        calls.append(camera.width)
        source.submit(ViewRequest(_camera()))  # a newer camera arrives while this one renders
        interrupt.check()
        h, w = camera.height, camera.width
        return RenderOutput(torch.full((h, w, 3), 0.5), torch.ones(h, w), torch.ones(h, w))

    stage = RenderStage(scene=None, render_fn=render, stale=source.superseded)
    first = ViewRequest(_camera())
    source.submit(first)
    assert stage.process(source.read()) is None and stage.interrupted == 1
    # The next render is superseded too, but it must reach the screen.
    frame = stage.process(source.read())
    assert frame is not None and tuple(frame.image.shape) == (24, 32, 3)
    assert int(frame.image[0, 0, 0]) == 128 and stage.interrupted == 1
    assert len(calls) == 2


def test_cpu_splat_render_stops_when_interrupted_and_not_otherwise():
    g = procedural.surface_scene(200)
    camera = procedural.bench_camera(48, 40)
    with pytest.raises(interrupt.RenderInterrupted):
        with interrupt.interruptible(lambda: True):
            rasterize(g, camera, impl="cpu")
    with interrupt.interruptible(lambda: False):
        inside = rasterize(g, camera, impl="cpu")
    outside = rasterize(g, camera, impl="cpu")
    torch.testing.assert_close(inside.rgb, outside.rgb)
    interrupt.check()  # outside any block: never raises


def test_a_closing_stream_stops_the_render_in_flight_even_right_after_an_interrupted_one():
    source = RequestSource(32, 24)
    calls = []

    def render(camera):
        calls.append(camera.width)
        source.submit(ViewRequest(_camera()))  # a newer camera: the first render is dropped, the second may not be
        if len(calls) == 2:
            source.shutdown()  # ... but the window closes: nobody will look at it
        interrupt.check()
        raise AssertionError("the render went on past its check point")

    stage = RenderStage(scene=None, render_fn=render, stale=source.superseded, cancelled=lambda: source.closed)
    source.submit(ViewRequest(_camera()))
    assert stage.process(source.read()) is None and stage.interrupted == 1
    assert stage.process(source.read()) is None and len(calls) == 2
    assert stage.interrupted == 1  # closing is not counted as a render a newer camera replaced
    assert source.read() is None  # the stream has ended
