"""The refund domain: one module per workflow step. Takes models and ports, returns models; no I/O of its own."""
