"""Oracle NetSuite books connector (SuiteTalk REST record service)."""
