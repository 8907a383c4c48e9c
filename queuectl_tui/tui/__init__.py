"""The Textual console. Only imported when the console opens: the CLI and workers never load it."""
