"""``refundflow``: one command for ops and developers, against the local stack or a deployed one."""
