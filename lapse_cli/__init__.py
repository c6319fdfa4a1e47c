"""The `lapse` command line: a tool for people, installed with `pip install`, never deployed.

It may import `chalicelib` (the engine, the domain) to stay in step with the service; nothing in
`chalicelib` imports it."""
