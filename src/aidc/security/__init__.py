"""Tokens (stored hashed), roles and the pure permission evaluator."""
