"""The life of one run (or one pack of runs): train (the Hydra app: compose -> build -> fit ->
test -> record), build (its pieces from the config), rundir (the run directory: RunDir, the one
owner of its files, and its lifecycle), record (results.json), resume, tracking (loggers),
console, progress, distributed, launch, dirlock, verdict, trained (a finished run's model).

Nothing is imported here: rundir, dirlock, atomic and launch are light enough for the command
line's first checks and for results/."""
