"""Sub-commands that live in their own modules: each module here defines
`register(subparsers)` and is picked up by aegis_app.cli.main automatically."""
