"""Plans that run sweeps and rebuild pages from them: compare (a fair comparison: tuning, then
evaluation on fresh seeds; its table and docs/results.md block) and reproduce (docs/reproduce.yaml
-> docs/results.md). Their command lines are rnnlab.commands.compare and .reproduce."""
