"""One package per platform (``refundflow.platforms.<name>``), listed in ``catalog.yaml`` beside this file."""
