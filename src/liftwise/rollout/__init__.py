"""Gated rollouts: a plan (canary -> ramp -> full), the traffic split by salted hash, the
persistent step store and history, and the gates that advance, hold or roll back a
candidate (docs/rollouts.md). The decision service runs them (liftwise.serve.rollouts)."""
