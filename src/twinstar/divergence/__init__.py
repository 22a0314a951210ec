"""Where a re-simulated run departs from the recorded one."""
