"""The lapse CDK stacks."""
