"""Running many stages: the pipeline of one job, ladders of jobs, sweeps, the SLURM and Ray
schedulers, and a local cluster on one machine for trying them."""
