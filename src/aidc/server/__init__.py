"""The composition root: builds the store, backend, services, control loop and API, and serves them.

It sits above every layer (it is `main`); the CLI's `up` verb is its only caller.
"""
