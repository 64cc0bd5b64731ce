"""The frame pipeline: `Source -> Stage -> ... -> Sink`, a worker thread per stage, bounded queues.

    from neuralframe.streaming import Pipeline, sources, sinks, stages
    report = Pipeline(sources.PatternSource(frames=90), [stages.ColorResize((360, 640), "warm")],
                      sinks.VideoFileSink("out.mp4")).run()
"""

from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Pipeline, Sink, Source, Stage
from neuralframe.streaming.stats import PipelineReport

__all__ = ["Frame", "StreamInfo", "Pipeline", "Source", "Stage", "Sink", "PipelineReport"]
