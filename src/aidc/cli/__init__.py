"""The aidc command line (Typer). It talks HTTP through aidc.client; `aidc up` starts the server."""
