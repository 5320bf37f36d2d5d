"""Platform connectors: one adapter per platform behind the ports in refundflow.ports."""
