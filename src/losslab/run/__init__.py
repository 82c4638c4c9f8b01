"""One run of ``losslab-train`` (orchestration half): the config schemas and rules, what a start
does, building the objects, the callbacks and TensorBoard extras, DDP children, the run folder's
layout (:mod:`losslab.run.rundir`), and ``losslab-eval``."""
