"""Every console script, thin: parse the command line, call a package, print. train
(rnnlab-train, and ``python -m rnnlab.train``: checks the command line before torch loads, then
runs rnnlab.run.train), compare (rnnlab-compare) and reproduce (rnnlab-reproduce: both run the
studies of rnnlab.studies)."""
