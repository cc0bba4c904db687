"""Built-in suites, one folder each (``<name>/manifest.toml`` and its bundled data), installed as
the package ``pytest_unlearn.suites``: ``pytest_unlearn.builtins`` registers every folder that
holds a manifest under the folder's name."""
