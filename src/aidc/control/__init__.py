"""The live loop: store -> snapshot -> scheduler -> backend -> store. The real clock lives here."""
