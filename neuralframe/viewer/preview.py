"""A window that shows a running pipeline's newest frame (`neuralframe stream --out window`).

The pipeline's sink is a `LatestFrameSink`; this window, on the main thread, draws whatever frame is
newest with an FPS overlay. Closing the window (or Esc) stops the stream cleanly; the end of the
stream closes the window.
"""

from __future__ import annotations

import time
from collections import deque


def show(pipeline, sink, title: str = "neuralframe", max_seconds: float | None = None):
    """Start `pipeline`, show its frames until the window closes or the stream ends; returns the report."""
    from neuralframe.viewer.window import require_display

    require_display("write the stream to a file with --out OUT.mp4 instead")
    import pyglet

    shown = deque(maxlen=60)
    state = {"serial": 0, "texture": None, "closing": False}
    pipeline.start()
    info = pipeline.info
    window = pyglet.window.Window(info.width, info.height, caption=f"neuralframe - {title}", resizable=True,
                                  vsync=False)
    label = pyglet.text.Label("", x=10, y=info.height - 10, anchor_y="top", font_size=11, color=(255, 255, 255, 255))
    box = pyglet.shapes.Rectangle(4, info.height - 30, 150, 26, color=(0, 0, 0, 150))
    t0 = time.perf_counter()

    def close():
        if not state["closing"]:
            state["closing"] = True
            if pipeline.running:
                pipeline.stop()
            pyglet.app.exit()

    def tick(dt):
        frame, serial = sink.latest()
        if frame is not None and serial != state["serial"]:
            state["serial"] = serial
            image = frame.image.numpy()
            h, w = image.shape[:2]
            state["texture"] = pyglet.image.ImageData(w, h, "RGB", image.tobytes(), pitch=-w * 3).get_texture()
            shown.append(time.perf_counter())
        if not pipeline.running or (max_seconds is not None and time.perf_counter() - t0 > max_seconds):
            close()

    @window.event
    def on_draw():
        window.clear()
        if state["texture"] is not None:
            state["texture"].blit(0, 0, width=window.width, height=window.height)
        fps = (len(shown) - 1) / (shown[-1] - shown[0]) if len(shown) > 1 and shown[-1] > shown[0] else 0.0
        label.text = f"{fps:5.1f} FPS"
        label.y = window.height - 10
        box.y = window.height - 30
        box.draw()
        label.draw()

    @window.event
    def on_key_press(symbol, modifiers):
        if symbol == pyglet.window.key.ESCAPE:
            close()
            return True

    @window.event
    def on_close():
        close()
        return True

    pyglet.clock.schedule_interval(tick, 1.0 / 120.0)
    try:
        pyglet.app.run(1.0 / 60.0)
    finally:
        pyglet.clock.unschedule(tick)
        if pipeline.running:
            pipeline.stop()
        try:
            report = pipeline.wait()
        finally:
            window.close()
    return report
