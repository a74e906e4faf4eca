"""Report files of simulations (Markdown, JSON, PNG plots), written where the caller says: shared by the CLI
(`aidc sim compare --report DIR`) and the control plane's simulations service. The figures and the Markdown
text come from the pure `aidc.sim`; this package is the part that writes files and draws with matplotlib,
which the pure packages must not do."""
