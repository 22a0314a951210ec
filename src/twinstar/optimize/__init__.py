"""Parameter search over backtests with Optuna: trials in worker processes, one shared study.

`python -m twinstar optimize` splits the candles into an in-sample head and a
held-out tail, lets worker processes (on this machine, and on any other
pointed at the same storage) search the in-sample part, then runs the best
trials once on the tail, so an overfitted result shows as an in-sample figure
the out-of-sample one does not repeat. Optuna is optional (the `optimize`
extra) and imported only by the modules that run trials.
"""
