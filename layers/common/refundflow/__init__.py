"""refundflow: serverless refund automation (the shared package of every Lambda function)."""
