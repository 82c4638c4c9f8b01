"""The studies (``losslab-study``): their catalogue, the stages that run them, the lr candidates
of stage 2 and the verdict (reading half, but for :mod:`losslab.study.stages`)."""
