"""Training under the live graph's timing: the simulated-time environment, SAC, evaluation."""
