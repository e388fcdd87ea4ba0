"""Benchmarks: pipelined tick vs sequential forward (`pipeline`), returns under delay (`delay`)."""
