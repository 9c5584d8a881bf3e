# The tests run against a real authzd started by the package's own pytest plugin.
pytest_plugins = ["authzd.testing"]
