"""Amazon Pay (API v2): refunds of a captured Charge, signed requests, IPNs as Amazon SNS messages."""
