"""The life of one run (or one pack of runs): train (the Hydra app: compose -> build -> fit ->
test -> record), build (its pieces from the config), rundir (the run directory: RunDir, the one
owner of its files, and its lifecycle), record (results.json), resume, tracking (loggers),
console, progress, distributed, dirlock, verdict, trained (a finished run's model); the ranks a
launcher started are read in rnnlab.config.launch.

Nothing is imported here: rundir, dirlock and atomic are light enough for the command
line's first checks and for results/."""
