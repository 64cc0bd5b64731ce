"""The noise schedules of the bundled tiny-shapes model: the one its teacher was trained with, and the LCM
sampler its folder ships (scheduler/). Inference, export and training all build them from here.
"""

from __future__ import annotations


def noise_scheduler():
    """The training schedule (Stable Diffusion's): 1000 scaled-linear steps, epsilon prediction."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", prediction_type="epsilon", clip_sample=False,
                         steps_offset=1)


def lcm_scheduler():
    """The few-step sampler of the guidance-embedded LCM student, on the same schedule."""
    from diffusers import LCMScheduler

    return LCMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                        original_inference_steps=50, timestep_scaling=10.0, prediction_type="epsilon",
                        set_alpha_to_one=True, steps_offset=1, timestep_spacing="leading", clip_sample=False)
