"""Scale-out on Ray: the offline products (`render`, `restyle`, `matte`, `generate`) split into independent
units that run on Ray actors (one model load per worker) and stream back, in order, into one output.

    with ray_session(RaySettings(address="local")) as session:
        report, summary = render_path_ray(scene_path, settings, "out.mp4", session)

Ray is an optional extra (`pip install 'neuralframe[distributed]'`); nothing here imports it at module
level, and `require_ray()` says how to install it.
"""

from neuralframe.distributed.cluster import RaySession, RaySettings, ray_session, require_ray
from neuralframe.distributed.scheduler import Unit, UnitFailed, UnitRunner, plan_units

__all__ = ["RaySession", "RaySettings", "ray_session", "require_ray", "Unit", "UnitFailed", "UnitRunner",
           "plan_units"]
