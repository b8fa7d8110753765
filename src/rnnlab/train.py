"""``python -m rnnlab.train``: the same command as ``rnnlab-train`` (a contract, DESIGN.md
section 2). The command line is checked by rnnlab.commands.train, the Hydra app is
rnnlab.run.train; this module imports nothing itself, so running it loads neither twice."""

if __name__ == "__main__":
    from rnnlab.commands.train import main

    main()
