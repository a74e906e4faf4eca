"""Use cases: submit, cancel, list, create a queue. Each authorizes (in one place), then works in one transaction."""
